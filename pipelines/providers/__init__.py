"""Generation providers: cloud model APIs and a local ComfyUI server behind one interface.

``PROVIDERS`` is the registry (``core.registry``): name -> adapter class. The public API for
the CLI, the agents and the studio:

* :func:`parse_spec` - ``"ark:doubao-seedream-4-0-250828"`` -> (provider, model);
* :func:`catalog` - every provider with its kinds, models, variables and documentation;
* :func:`create` - an adapter set up from the config (``[providers.NAME]``);
* :class:`~pipelines.providers.runner.TaskRunner` - runs jobs with the journal, the budget,
  retries and per-provider concurrency; its ``quote`` prices a plan before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.registry import Registry
from pipelines.providers.base import (
    KINDS,
    GenRequest,
    Kind,
    ModelInfo,
    Provider,
    ProviderSettings,
    Task,
    Units,
)

PROVIDERS: Registry[Provider] = Registry("provider", "generation providers (cloud APIs, local ComfyUI)")
PROVIDERS.add("ark", "pipelines.providers.ark:ArkProvider", requires=("httpx",), extra="providers",
              description="Volcengine Ark 火山方舟: Seedream images (reference images), Seedance video")
PROVIDERS.add("dashscope", "pipelines.providers.dashscope:DashScopeProvider", requires=("httpx",), extra="providers",
              description="Alibaba Cloud Model Studio 阿里云百炼: Wan text-to-image, image-to-video")
PROVIDERS.add("kling", "pipelines.providers.kling:KlingProvider", requires=("httpx",), extra="providers",
              description="Kling 可灵: images with a subject reference, image-to-video")
PROVIDERS.add("minimax", "pipelines.providers.minimax:MiniMaxProvider", requires=("httpx",), extra="providers",
              description="MiniMax: Hailuo 海螺 video, speech")
PROVIDERS.add("openai", "pipelines.providers.openai:OpenAIProvider", requires=("httpx", "openai"), extra="providers",
              description="OpenAI or any OpenAI-compatible server: images, speech")
PROVIDERS.add("volcengine", "pipelines.providers.volcengine:VolcengineTTSProvider", requires=("httpx",),
              extra="providers", description="Volcengine 豆包语音: speech synthesis over HTTP")
PROVIDERS.add("comfyui", "pipelines.providers.comfyui:ComfyUIProvider", requires=("httpx",), extra="providers",
              description="ComfyUI on your own machine: your workflow (API format), two examples shipped")


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What the studio shows when a person picks a provider."""

    name: str
    title: str
    kinds: tuple[Kind, ...]
    models: tuple[ModelInfo, ...]
    env_keys: tuple[str, ...]
    base_url: str
    docs: tuple[str, ...]
    checked: str
    available: bool
    reason: str = ""


def parse_spec(spec: str, kind: Kind | None = None) -> tuple[str, str]:
    """``PROVIDER:MODEL`` (or ``PROVIDER`` for its default model of ``kind``) -> (provider, model)."""
    name, sep, model = (spec or "").strip().partition(":")
    if not name or name not in PROVIDERS:
        raise InputError(f"unknown provider in {spec!r}", hint=f"use PROVIDER:MODEL with one of: {', '.join(PROVIDERS)}")
    if not model:
        cls = PROVIDERS.factory(name)
        default = cls.default_model(kind) if kind else None  # type: ignore[attr-defined]
        if default is None:
            raise InputError(f"{spec!r} names no model", hint=f"write {name}:MODEL")
        model = default
    return name, model.strip()


def provider_settings(name: str, config: Any = None) -> ProviderSettings:
    table = (getattr(config, "providers", None) or {}).get(name, {}) if config is not None else {}
    return ProviderSettings.from_mapping(name, table)


def create(name: str, config: Any = None, **kwargs: Any) -> Provider:
    """The adapter ``name`` with its ``[providers.NAME]`` settings from ``config``."""
    return PROVIDERS.create(name, provider_settings(name, config), **kwargs)


def catalog(config: Any = None) -> list[ProviderInfo]:
    """Every registered provider: kinds, models, the variables it needs, where its docs are."""
    out = []
    for status in PROVIDERS.status():
        try:
            cls: Any = PROVIDERS.factory(status.name)
        except Exception as e:  # noqa: BLE001 - a broken plug-in is listed, not fatal
            out.append(ProviderInfo(status.name, status.description, (), (), (), "", (), "", False, str(e)))
            continue
        settings = provider_settings(status.name, config)
        out.append(ProviderInfo(status.name, cls.title or status.description, cls.kinds(), tuple(cls.models.values()),
                                tuple(cls.env_keys), settings.base_url or cls.default_base_url, tuple(cls.docs),
                                cls.checked, status.available, status.reason))
    return out


__all__ = ["KINDS", "PROVIDERS", "GenRequest", "ModelInfo", "Provider", "ProviderInfo", "ProviderSettings", "Task",
           "Units", "catalog", "create", "parse_spec", "provider_settings"]
