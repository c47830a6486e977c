"""`policy=<prefix>:<reference>`: the registry through which the engine finds, e.g., the AWS
package's learned policies without importing it."""

import subprocess
import sys
from pathlib import Path

import pytest

from augssl.augment import AugmentSpec
from augssl.augment import policy_schemes as ps
from augssl.config import ConfigError, parse_params
from augssl.engine.config import TrainingConfig
from augssl.engine.entry import _check_policy_reference
from augssl.engine.session import device_augment

CODE = Path(__file__).resolve().parents[2] / "code"
SPEC = AugmentSpec(image_size=28, channels=1, flip=False, fill=(73,))


@pytest.fixture
def registry(monkeypatch):
    """An empty registry with no known providers, for this test only."""
    monkeypatch.setattr(ps, "_SCHEMES", {})
    monkeypatch.setattr(ps, "PROVIDERS", {})
    return ps


def _scheme(prefix="demo", calls=None):
    calls = [] if calls is None else calls
    return ps.PolicyScheme(prefix=prefix, reference="<name>",
                           check=lambda reference: calls.append(("check", reference)),
                           augment=lambda reference, spec: ("augment", reference, spec))


def test_a_registered_scheme_resolves_its_values_and_names_are_no_references(registry):
    scheme = registry.register_policy_scheme(_scheme())
    assert scheme.form == "demo:<name>"
    assert registry.policy_reference("demo:a/b:c.json") == (scheme, "a/b:c.json")
    assert registry.policy_reference("cutout") is None
    assert registry.policy_forms() == ("demo:<name>",)


@pytest.mark.parametrize("prefix", ("", "a:b"))
def test_a_prefix_must_be_a_name_without_the_separator(registry, prefix):
    with pytest.raises(ValueError, match="non-empty name without ':'"):
        registry.register_policy_scheme(_scheme(prefix))


def test_an_unknown_scheme_says_what_is_accepted(registry):
    with pytest.raises(ConfigError, match=r"policy=other:x: no policy scheme is registered "
                       r"under 'other': expected a policy name \(no policy scheme"):
        registry.policy_reference("other:x")
    registry.register_policy_scheme(_scheme())
    with pytest.raises(ConfigError, match="expected a policy name or one of demo:<name>"):
        registry.policy_reference("other:x")


PROVIDER = """
from augssl.augment.policy_schemes import PolicyScheme, register_policy_scheme

register_policy_scheme(PolicyScheme("lazy", "<anything>", check=print, augment=print))
"""


@pytest.fixture
def provider(registry, tmp_path, monkeypatch):
    """A module ``lazy_policy_provider`` that registers the scheme ``lazy`` when imported."""
    (tmp_path / "lazy_policy_provider.py").write_text(PROVIDER)
    (tmp_path / "silent_policy_provider.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazy_policy_provider"
    for name in ("lazy_policy_provider", "silent_policy_provider"):
        sys.modules.pop(name, None)


def test_a_known_provider_is_imported_on_the_first_lookup_of_its_prefix(registry, provider,
                                                                        monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "lazy", provider)
    assert registry.policy_reference("cutout") is None
    registry.register_policy_scheme(_scheme())
    assert registry.policy_reference("demo:x")[1] == "x"
    assert provider not in sys.modules
    scheme, reference = registry.policy_reference("lazy:some run")
    assert provider in sys.modules
    assert (scheme.prefix, reference) == ("lazy", "some run")


def test_the_listing_of_forms_imports_the_known_providers(registry, provider, monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "lazy", provider)
    assert registry.policy_forms() == ("lazy:<anything>",)


def test_a_provider_that_registers_nothing_is_reported(registry, provider, monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "silent", "silent_policy_provider")
    with pytest.raises(RuntimeError, match="silent_policy_provider was imported to provide the "
                       "policy scheme 'silent' but registered no scheme"):
        registry.policy_reference("silent:x")


def test_the_engine_takes_the_values_and_calls_the_hooks_of_a_registered_scheme(registry):
    calls = []
    registry.register_policy_scheme(_scheme(calls=calls))
    assert _parse("policy=demo:first").policy == "demo:first"
    with pytest.raises(ConfigError, match="expected one of .*, demo:<name>"):
        _parse("policy=dmeo:first")
    with pytest.raises(ConfigError, match="no per-image PIL version for augment_on=cpu"):
        _parse("policy=demo:first;augment_on=cpu")
    assert device_augment("demo:first", SPEC) == ("augment", "first", SPEC)
    _check_policy_reference("demo:second")
    _check_policy_reference("cutout")
    assert calls == [("check", "second")]


def _parse(params: str) -> TrainingConfig:
    return parse_params(params, TrainingConfig, dataset="FashionMNIST", network="smallcnn")


def test_the_aws_package_provides_the_aws_scheme():
    from augssl.search.aws.learned import LEARNED_POLICY_SCHEME

    scheme, reference = ps.policy_reference("aws:0123")
    assert scheme is LEARNED_POLICY_SCHEME and reference == "0123"
    assert "aws:<run id, policy.json or uniform>" in ps.policy_forms()


LAZY_ENGINE = """
import sys
import augssl.engine.config, augssl.engine.entry, augssl.engine.fit, augssl.engine.session
from augssl.augment.policy_schemes import policy_reference
assert "augssl.search" not in sys.modules, "the engine imported augssl.search"
assert policy_reference("randaugment") is None and "augssl.search" not in sys.modules
assert policy_reference("aws:0123")[1] == "0123" and "augssl.search.aws" in sys.modules
"""


def test_the_engine_imports_the_aws_package_only_for_an_aws_value():
    result = subprocess.run([sys.executable, "-c", LAZY_ENGINE], cwd=CODE, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
