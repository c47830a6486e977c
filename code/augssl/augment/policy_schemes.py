"""Policies named by reference: ``policy=<prefix>:<reference>``, e.g. ``aws:<run id or
policy.json>``, the policy an ``aws_search`` run learned.

The package that provides a scheme registers it on import (`register_policy_scheme`); the engine
finds it through `policy_reference` without importing that package: the first time a value with
a prefix in `PROVIDERS` is looked up, its provider is imported. `policy_forms` lists the accepted
forms for help texts and error messages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from augssl.config import ConfigError

if TYPE_CHECKING:
    from augssl.augment.factory import AugmentSpec

SEPARATOR = ":"

# prefix -> the package that registers that scheme when it is imported
PROVIDERS = {"aws": "augssl.search.aws"}


@dataclass(frozen=True)
class PolicyScheme:
    """The values ``<prefix>:<reference>`` of a policy parameter."""

    prefix: str  # "aws"
    reference: str  # what may follow the prefix, as help texts show it: "<run id or policy.json>"
    # before any training: raise FileNotFoundError or ValueError, saying what to pass instead,
    # when the reference names no usable policy
    check: Callable[[str], object]
    # the batched augmentation on the training device: augment(images_uint8, generator)
    augment: Callable[[str, AugmentSpec], Callable]

    @property
    def form(self) -> str:
        return f"{self.prefix}{SEPARATOR}{self.reference}"


_SCHEMES: dict[str, PolicyScheme] = {}


def register_policy_scheme(scheme: PolicyScheme) -> PolicyScheme:
    """Make ``<scheme.prefix>:<reference>`` values resolve to ``scheme`` (replacing any scheme
    registered before under that prefix)."""
    if not scheme.prefix or SEPARATOR in scheme.prefix:
        raise ValueError(f"policy scheme prefix {scheme.prefix!r}: expected a non-empty name "
                         f"without {SEPARATOR!r}")
    _SCHEMES[scheme.prefix] = scheme
    return scheme


def _scheme(prefix: str) -> PolicyScheme | None:
    """The scheme registered under ``prefix``, importing its known provider on first use."""
    if prefix not in _SCHEMES and prefix in PROVIDERS:
        importlib.import_module(PROVIDERS[prefix])
        if prefix not in _SCHEMES:
            raise RuntimeError(f"{PROVIDERS[prefix]} was imported to provide the policy scheme "
                               f"{prefix!r} but registered no scheme under that prefix")
    return _SCHEMES.get(prefix)


def policy_forms() -> tuple[str, ...]:
    """Every accepted ``<prefix>:<reference>`` form (imports the known providers)."""
    for prefix in PROVIDERS:
        _scheme(prefix)
    return tuple(scheme.form for scheme in _SCHEMES.values())


def policy_reference(value: str) -> tuple[PolicyScheme, str] | None:
    """(scheme, reference) of a ``<prefix>:<reference>`` policy; None for a policy name.

    A prefix no scheme is registered under, nor known to a provider, is a ConfigError that
    lists the accepted forms."""
    prefix, separator, reference = value.partition(SEPARATOR)
    if not separator:
        return None
    scheme = _scheme(prefix)
    if scheme is None:
        forms = policy_forms()
        accepted = (f"a policy name or one of {', '.join(forms)}" if forms
                    else "a policy name (no policy scheme is registered)")
        raise ConfigError(f"policy={value}: no policy scheme is registered under {prefix!r}: "
                          f"expected {accepted}.")
    return scheme, reference
