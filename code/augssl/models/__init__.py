"""Image classifiers for augmentation and semi-supervised learning experiments.

Every model takes ``num_classes`` and ``in_channels``, accepts 28x28, 32x32 and
larger inputs, exposes its last layer as ``model.classifier`` (an
``nn.Linear``) and its penultimate features through
``model.forward_features(x)``, with ``model(x) == model.classifier(model.forward_features(x))``.

Build one by name with :func:`build_model`; :data:`MODEL_NAMES` lists the names.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from ._base import FeatureClassifier
from .fastresnet import FastResNet
from .pyramidnet import PyramidNet
from .resnet import resnet18, resnet50
from .shakeshake import ShakeShakeResNet
from .smallcnn import SmallCNN
from .wideresnet import WideResNet

__all__ = ["MODEL_NAMES", "FeatureClassifier", "build_model", "check_model_name", "model_options"]

# Constructor arguments every model takes; build_model passes them positionally.
_SHAPE_ARGUMENTS = ("num_classes", "in_channels")


@dataclass(frozen=True)
class _Variant:
    constructor: Callable[..., FeatureClassifier]
    fixed: dict[str, Any] = field(default_factory=dict)

    def options(self) -> tuple[str, ...]:
        parameters = inspect.signature(self.constructor).parameters
        return tuple(name for name in parameters
                     if name not in _SHAPE_ARGUMENTS and name not in self.fixed)


_REGISTRY: dict[str, _Variant] = {
    "smallcnn": _Variant(SmallCNN),
    "smallcnn2x": _Variant(SmallCNN, {"width": 64}),
    "fastresnet": _Variant(FastResNet),
    "wideresnet": _Variant(WideResNet),
    "wideresnet28-2": _Variant(WideResNet, {"depth": 28, "width": 2}),
    "wideresnet28-10": _Variant(WideResNet, {"depth": 28, "width": 10}),
    "wideresnet40-2": _Variant(WideResNet, {"depth": 40, "width": 2}),
    "resnet18": _Variant(resnet18),
    "resnet50": _Variant(resnet50),
    "shakeshake26_2x32d": _Variant(ShakeShakeResNet, {"base_width": 32}),
    "shakeshake26_2x96d": _Variant(ShakeShakeResNet, {"base_width": 96}),
    "shakeshake26_2x112d": _Variant(ShakeShakeResNet, {"base_width": 112}),
    "pyramidnet": _Variant(PyramidNet),
    "pyramidnet272": _Variant(PyramidNet, {"depth": 272, "alpha": 200}),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def check_model_name(name: str) -> None:
    """Raise the ``ValueError`` :func:`build_model` would raise for ``name``, without building
    anything."""
    if name in _REGISTRY:
        return
    closest = difflib.get_close_matches(str(name), MODEL_NAMES, n=1, cutoff=0.0)
    raise ValueError(
        f"unknown model name {name!r}; did you mean {closest[0]!r}? "
        f"Valid names: {', '.join(MODEL_NAMES)}"
    )


def model_options(name: str) -> tuple[str, ...]:
    """Keyword arguments that :func:`build_model` accepts for ``name``."""
    check_model_name(name)
    return _REGISTRY[name].options()


def build_model(name: str, num_classes: int, in_channels: int = 3,
                **kwargs: Any) -> FeatureClassifier:
    """Build the classifier called ``name`` (one of :data:`MODEL_NAMES`).

    ``kwargs`` are model options, e.g. ``dropout`` for the Wide ResNets,
    ``small_input`` for resnet18/50, ``depth``/``alpha`` for ``"pyramidnet"``;
    :func:`model_options` lists them per name.
    """
    check_model_name(name)
    variant = _REGISTRY[name]
    allowed = variant.options()
    unexpected = sorted(set(kwargs) - set(allowed))
    if unexpected:
        raise TypeError(
            f"model {name!r} does not take option(s) {', '.join(unexpected)}; "
            f"it accepts: {', '.join(allowed) if allowed else 'no options'}"
            + (f" (fixed by the name: {', '.join(sorted(variant.fixed))})" if variant.fixed else "")
        )
    return variant.constructor(num_classes, in_channels, **variant.fixed, **kwargs)
