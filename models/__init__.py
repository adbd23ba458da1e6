"""Network definitions, the model registry, weight loading and the shipped weights.

Kept import-light on purpose: ``models.train_sr`` runs on machines that have only torch,
numpy and Pillow, so nothing here imports pydantic, PyAV or ``pipelines``.

:data:`SR_MODELS` is the plug-in registry of super-resolution models (:mod:`core.registry`).
Its built-in entries come from the sha256 weight manifest in :mod:`models.registry`
(``REGISTRY``: architecture, settings, weights file and digest, licence), added on the registry's
first read so that importing ``models`` imports no torch. ``SR_MODELS.create(name, device, dtype,
cache_dir=..., channels_last=...)`` returns the model in eval mode with verified weights.

A third-party model registers as the entry point ``sr-model.<name>`` in the group
``reelforge.plugins``: a factory with that signature returning an ``nn.Module`` that carries
``scale`` (int, output size / input size) and ``licence`` (str) attributes.

Other entry points: :mod:`models.registry` (``load_model``, ``ensure_official``, ``get_spec``,
``describe_models``); the architectures in :mod:`models.srvgg` and :mod:`models.rrdbnet`; the
ncnn converter in :mod:`models.ncnn_convert` (its command line is ``reelforge models convert``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.registry import Registry

if TYPE_CHECKING:
    from torch import nn

SR_MODELS: Registry[nn.Module] = Registry("sr-model", "super-resolution models / 超分模型",
                                          populate="models.registry:register_sr_models")

__all__ = ["SR_MODELS"]
