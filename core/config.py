"""Typed configuration: a TOML file plus environment overrides.

Lookup order (later wins): built-in defaults -> ``$REELFORGE_CONFIG`` or
``~/.config/reelforge/config.toml`` -> ``./reelforge.toml`` -> environment variables named
``REELFORGE_<SECTION>__<KEY>`` (for example ``REELFORGE_LLM__BASE_URL``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkspaceConfig:
    root: str = "~/ReelForge"  # parent folder of projects made without --project


@dataclass(slots=True)
class RenderConfig:
    width: int = 1080
    height: int = 1920  # vertical 9:16 by default
    fps: str = "25"  # a rational, e.g. "25", "30000/1001"
    codec: str = "h264"  # h264 | h265
    crf: int = 20
    preset: str = "veryfast"
    audio_rate: int = 48000
    audio_bitrate: int = 128000

    @property
    def fps_fraction(self) -> Fraction:
        return parse_fps(self.fps)


@dataclass(slots=True)
class TTSConfig:
    engine: str = "auto"  # auto | espeak-ng | espeakng-loader | silence
    voice: str = "cmn"
    rate_wpm: int = 170  # espeak words per minute; for Chinese about 3.5 characters a second
    narrator_voice: str = "cmn"
    piper_voice: str = ""  # a piper .onnx voice file (its .onnx.json beside it); empty: installed voice packages
    http_url: str = ""  # an HTTP TTS service (OpenAI-style /v1/audio/speech), e.g. http://127.0.0.1:8000/v1/audio/speech
    http_key: str = ""  # sent as "Authorization: Bearer KEY"; prefer the env var REELFORGE_TTS__HTTP_KEY
    http_model: str = ""
    http_voices: str = ""  # comma-separated voice names the service offers; characters get one each
    loudness_lufs: float = -16.0  # episode loudness target (EBU R128 / BS.1770 integrated)


@dataclass(slots=True)
class LLMConfig:
    base_url: str = ""  # OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    api_key: str = ""
    model: str = ""
    timeout_s: float = 120.0
    max_retries: int = 4
    concurrency: int = 4
    local_model_path: str = ""  # a transformers folder or a GGUF file
    fallback: str = "auto"  # a level the model cannot write: offline (fill it from the offline engine) | none | auto


@dataclass(slots=True)
class ModelsConfig:
    cache_dir: str = "~/.cache/reelforge/models"
    image_model: str = ""  # a diffusers folder or single file
    video_model: str = ""
    paths: dict[str, str] = field(default_factory=dict)  # name -> local path


@dataclass(slots=True)
class SynthConfig:
    engine: str = "auto"  # auto (diffusers when models.image_model is set, else animatic) | animatic | diffusers
    steps: int = 0  # 0: the pipeline's default
    guidance: float = 0.0  # 0: the pipeline's default
    size: str = ""  # generation size WxH; empty: the model's native size, fitted to the frame
    fit: str = "auto"  # auto | crop | outpaint | aspect
    negative_prompt: str = ""
    scheduler: str = ""  # a diffusers scheduler class name; empty: the pipeline's own
    batch_size: int = 4
    style: str = ""  # appended to every keyframe prompt, e.g. "cinematic, film grain"
    consistency: str = "auto"  # auto | prompt | img2img | ip-adapter | off
    ip_adapter: str = ""  # local IP-Adapter folder
    image_encoder: str = ""  # local transformers vision model for consistency scores
    video_frames: int = 14
    video_fps: int = 7
    backgrounds: str = ""  # a folder of your own images, matched to scene places by file name
    music: str = ""  # a folder of music beds
    sfx: str = ""  # a folder of sound effects, matched to shot.sfx by file name
    budget_cny: str = ""  # hard cap for one synth run, in yuan (decimal string); empty: no cap
    gpu_seconds_cap: str = ""  # hard cap on estimated GPU seconds per run; empty: no cap


@dataclass(slots=True)
class LabelConfig:
    enabled: bool = True
    text: str = "AI生成"
    position: str = "top-right"  # top-left | top-right | bottom-left | bottom-right
    opacity: float = 0.85
    producer: str = "ReelForge"


@dataclass(slots=True)
class LedgerConfig:
    db: str = "~/ReelForge/ledger.sqlite"
    price_book: str = ""  # empty: the price book shipped in ledger/


@dataclass(slots=True)
class ReviewConfig:
    # true: cut refuses to assemble an episode while any shot is unapproved in review (and names
    # them); false (default, so a headless make runs through): it warns and assembles
    required: bool = False


@dataclass(slots=True)
class ServerConfig:
    """The studio's web server: accounts, sessions, login throttling, uploads."""

    users_file: str = ""  # accounts file; empty: ~/.config/reelforge/users.json (never inside a project)
    session_hours: float = 12.0  # a login lasts at most this long
    idle_minutes: float = 120.0  # and ends after this long without a request from it
    login_attempts: int = 5  # failed logins of one account within the lockout window before it is locked
    address_attempts: int = 20  # failed logins from one client address before that address is locked
    lockout_minutes: float = 15.0  # the window failures are counted in, and how long a lock lasts
    max_upload_mb: int = 64  # largest file the studio accepts (a novel, an invoice scan)

    def check(self) -> None:
        for name in ("session_hours", "idle_minutes", "login_attempts", "address_attempts", "lockout_minutes",
                     "max_upload_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"[server] {name} = {getattr(self, name)!r} must be positive",
                                  hint="remove the setting to use the default")


@dataclass(slots=True)
class ClusterConfig:
    # where make and enhance run their tasks: "" (this process, the default), "auto" (the Ray
    # cluster this machine belongs to, else a local one) or a Ray address ("10.0.0.5:6379")
    address: str = ""
    retries: int = 3  # times a task is run again after its worker or node died


@dataclass(slots=True)
class Config:
    device: str = "auto"
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # [providers.NAME] tables: base_url, concurrency, timeout_s, max_retries, poll_first_s, poll_max_s,
    # task_timeout_s and provider-specific keys (pipelines.providers.base.ProviderSettings); API keys
    # never go here (environment or the 0600 secrets file)
    providers: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where settings came from, for `doctor`

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for section, key in SECRET_FIELDS:
            if data[section].get(key):
                data[section][key] = "***"
        return data

    def without_secrets(self) -> Config:
        """A copy with every secret blanked: what may travel to other machines (each worker takes its
        secrets from its own environment or config file, see :func:`with_local_secrets`)."""
        copy = dataclasses.replace(self, **{s: dataclasses.replace(getattr(self, s)) for s, _ in SECRET_FIELDS})
        for section, key in SECRET_FIELDS:
            setattr(getattr(copy, section), key, "")
        return copy


# (section, key) of the settings that are secrets: masked in reports, never sent to other machines
SECRET_FIELDS: tuple[tuple[str, str], ...] = (("llm", "api_key"), ("tts", "http_key"))


def with_local_secrets(config: Config, local: Config) -> Config:
    """``config`` with the secrets it lacks taken from ``local`` (this machine's own config and environment)."""
    missing = [(s, k) for s, k in SECRET_FIELDS if not getattr(getattr(config, s), k) and getattr(getattr(local, s), k)]
    if not missing:
        return config
    copy = dataclasses.replace(config, **{s: dataclasses.replace(getattr(config, s)) for s, _ in missing})
    for section, key in missing:
        setattr(getattr(copy, section), key, getattr(getattr(local, section), key))
    return copy


MIN_FRAME_SIDE = 64  # below this no card, subtitle or label can be laid out
MAX_FRAME_SIDE = 8192


def check_frame_size(width: int, height: int, *, what: str = "size") -> tuple[int, int]:
    """``(width, height)`` if it is a frame size we can render (even, 64..8192 px a side), else a ConfigError."""
    if not (isinstance(width, int) and isinstance(height, int)):
        raise ConfigError(f"{what} {width!r}x{height!r} must be whole numbers of pixels")
    if width % 2 or height % 2:
        raise ConfigError(f"{what} {width}x{height} must have even sides (yuv420p video)",
                          hint=f"e.g. {width + width % 2}x{height + height % 2}")
    if not (MIN_FRAME_SIDE <= width <= MAX_FRAME_SIDE and MIN_FRAME_SIDE <= height <= MAX_FRAME_SIDE):
        raise ConfigError(f"{what} {width}x{height} is out of range: each side must be "
                          f"{MIN_FRAME_SIDE}-{MAX_FRAME_SIDE} pixels", hint="e.g. 1080x1920 (9:16) or 1920x1080")
    return width, height


def parse_fps(text: str | int | Fraction) -> Fraction:
    """``"25"``, ``"30000/1001"``, ``"29.97"`` -> Fraction; refuses zero and negatives."""
    try:
        if isinstance(text, Fraction):
            value = text
        elif isinstance(text, int):
            value = Fraction(text)
        else:
            s = str(text).strip()
            value = Fraction(s).limit_denominator(1001) if "." in s else Fraction(s)
    except (ValueError, ZeroDivisionError) as e:
        raise ConfigError(f"fps {text!r} is not a number", hint='write e.g. "25" or "30000/1001"') from e
    if value <= 0:
        raise ConfigError(f"fps {text!r} must be positive")
    if value == Fraction(2997, 100):
        value = Fraction(30000, 1001)
    elif value == Fraction(2397, 100) or value == Fraction(23976, 1000):
        value = Fraction(24000, 1001)
    return value


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from e
    if typ is float:
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where} must be a number, got {value!r}") from e
    if typ is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        args = typing.get_args(typ)
        if len(args) == 2 and typing.get_origin(args[1]) is dict:  # a table of tables
            return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, dict | list):
                raise ConfigError(f"{where}.{k} must be a plain value, got a {type(v).__name__}")
            out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
        return out
    if origin in (types.UnionType, typing.Union):
        return value
    return value


def _apply(obj: Any, data: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names or key == "sources":
            raise ConfigError(
                f"unknown setting {where}{key!r}",
                hint=f"known settings here: {', '.join(sorted(names - {'sources'}))}",
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a table, got {value!r}")
            _apply(current, value, f"{where}{key}.")
        elif isinstance(current, dict) and isinstance(value, dict) and current:
            # tables merge across sources (a provider's base_url from the env, its concurrency from a file)
            merged = _coerce(value, hints[key], f"{where}{key}")
            for k, v in merged.items():
                if isinstance(v, dict) and isinstance(current.get(k), dict):
                    current[k] = {**current[k], **v}
                else:
                    current[k] = v
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}{key}"))


_TOP_LEVEL = {"device"}


def _env_overrides(env: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("REELFORGE_"):
            continue
        path = name[len("REELFORGE_"):].lower().split("__")
        # only REELFORGE_<SECTION>__<KEY> and top-level settings; other REELFORGE_* variables
        # (REELFORGE_LOG, REELFORGE_CONFIG, REELFORGE_FONT, test switches) are not config
        if len(path) == 1 and path[0] not in _TOP_LEVEL:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def load_config(path: str | os.PathLike[str] | None = None,
                env: typing.Mapping[str, str] | None = None) -> Config:
    """Build the effective config. ``path`` (if given) must exist; default files are optional."""
    env = os.environ if env is None else env
    cfg = Config()
    candidates: list[tuple[Path, bool]] = []
    if path is not None:
        candidates.append((Path(path).expanduser(), True))
    else:
        if env.get("REELFORGE_CONFIG"):
            candidates.append((Path(env["REELFORGE_CONFIG"]).expanduser(), True))
        else:
            candidates.append((Path("~/.config/reelforge/config.toml").expanduser(), False))
        candidates.append((Path("reelforge.toml"), False))
    for file, required in candidates:
        if not file.exists():
            if required:
                raise ConfigError(f"config file {str(file)!r} does not exist", hint="check the path or unset REELFORGE_CONFIG")
            continue
        if file.is_dir():
            raise ConfigError(f"config file {str(file)!r} is a folder",
                              hint="point --config or REELFORGE_CONFIG at the config.toml file inside it")
        try:
            raw = file.read_bytes()
        except OSError as e:
            raise ConfigError(f"config file {str(file)!r} cannot be read: {e.strerror or e}") from e
        if raw.startswith(b"\xef\xbb\xbf"):  # Notepad's UTF-8 signature; TOML forbids it, we read past it
            log.warning("config file %s starts with a UTF-8 byte-order mark (BOM): ignored; "
                        "save it as UTF-8 without BOM", file)
            raw = raw[3:]
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(file)!r} is not UTF-8 text (byte {e.start})",
                              hint="save it as UTF-8") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {str(file)!r} is not valid TOML: {e}") from e
        _apply(cfg, data, "")
        cfg.sources.append(str(file))
    overrides = _env_overrides(env)
    if overrides:
        _apply(cfg, overrides, "")
        cfg.sources.append("environment")
    parse_fps(cfg.render.fps)  # validate early
    cfg.server.check()
    check_frame_size(cfg.render.width, cfg.render.height, what="[render] width x height")
    return cfg
