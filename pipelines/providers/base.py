"""The provider interface: one small base class, the plain data that crosses it.

A provider offers some of three kinds of work: ``image`` (text-to-image, image with reference
images), ``video`` (image-to-video, text-to-video) and ``voice`` (text-to-speech). Each adapter
implements four steps and one translation:

* :meth:`Provider.estimate` - the billing units a request will use, in the provider's own unit
  (images, video seconds, output tokens, characters), for the quote before anything is sent;
* :meth:`Provider.submit` - send the request; an asynchronous API gives a task id (the journal
  stores it before anything else happens), a synchronous one gives the result at once;
* :meth:`Provider.poll` - ask how the task is doing; fill in result URLs when it succeeded;
* :meth:`Provider.download` - fetch one result (URLs expire: a fresh one is asked for once);
* :meth:`Provider.usage` - the provider's own usage report turned into :class:`Units`.

The orchestration (journal, retries, budget, concurrency, usage records) lives in
:mod:`pipelines.providers.runner`; adapters only speak their API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

from core.errors import InputError
from pipelines.providers.errors import ProviderAuthError
from pipelines.providers.http import Http, RetryPolicy
from pipelines.providers.secrets import Secret, get_logger, get_secret, where_to_set

log = get_logger(__name__)

Kind = Literal["image", "video", "voice"]
KINDS: tuple[Kind, ...] = ("image", "video", "voice")

# task states kept in the journal
SUBMITTING = "submitting"  # written before the call that creates the task
SUBMITTED = "submitted"  # the provider gave a task id
RUNNING = "running"
SUCCEEDED = "succeeded"  # results ready at the provider
DONE = "done"  # results downloaded, hashed, usage recorded
FAILED = "failed"
UNKNOWN = "unknown"  # the create call may or may not have reached the provider
ACTIVE = (SUBMITTED, RUNNING, SUCCEEDED)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model an adapter knows; other model names are passed through as given."""

    name: str
    kind: Kind
    unit: str  # the billing unit (core.usage.UNITS): image | video_second | output_token | character
    modes: tuple[str, ...] = ()  # t2i, i2i, t2v, i2v, tts
    references: int = 0  # how many reference images the API accepts (0: none)
    durations: tuple[int, ...] = ()  # video lengths in seconds the model accepts
    default: bool = False  # the adapter's default model of its kind
    note: str = ""


@dataclass(frozen=True, slots=True)
class GenRequest:
    """One billable generation. Paths are local files; adapters encode them as their API wants."""

    kind: Kind
    model: str
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    width: int = 0
    height: int = 0
    references: tuple[Path, ...] = ()  # character reference sheets (image-with-references)
    image: Path | None = None  # first frame for image-to-video
    duration: int = 5  # video seconds
    text: str = ""  # voice: what to say
    voice: str = ""  # voice id of the chosen voice model
    speed: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)  # provider-specific extras

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown generation kind {self.kind!r}", hint=f"use one of {', '.join(KINDS)}")
        if self.kind == "voice" and not self.text.strip():
            raise InputError("a voice request needs text")
        if self.kind in ("image", "video") and not self.prompt.strip() and self.image is None:
            raise InputError(f"an {self.kind} request needs a prompt or an image")
        if self.kind == "video" and self.duration < 1:
            raise InputError(f"video duration must be at least 1 second, got {self.duration}")

    def key(self) -> str:
        """Hash of everything that shapes the result, files by their content (the journal's request hash)."""
        data = asdict(self)
        data["references"] = [_file_digest(p) for p in self.references]
        data["image"] = _file_digest(self.image) if self.image else None
        data["options"] = dict(self.options)
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def aspect(self) -> str:
        """The nearest common aspect ratio of width x height ("9:16" when unset)."""
        if not self.width or not self.height:
            return "9:16"
        return nearest_aspect(self.width, self.height)


ASPECTS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4, "3:2": 3 / 2, "2:3": 2 / 3,
           "21:9": 21 / 9}


def nearest_aspect(width: int, height: int, allowed: tuple[str, ...] | None = None) -> str:
    ratio = width / height
    names = allowed or tuple(ASPECTS)
    return min(names, key=lambda n: abs(ASPECTS[n] - ratio))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise InputError(f"reference image {str(path)!r} cannot be read ({e.strerror})") from e
    return h.hexdigest()


def image_b64(path: Path, data_url: bool = True) -> str:
    """A local image as base64, optionally as a ``data:image/...;base64,`` URL (lower-case format)."""
    raw = Path(path).read_bytes()
    encoded = base64.b64encode(raw).decode("ascii")
    if not data_url:
        return encoded
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    return f"data:{mime.lower()};base64,{encoded}"


@dataclass(slots=True)
class Output:
    """One result of a task: a URL to download, or bytes the API returned inline."""

    url: str = ""
    data: bytes | None = None
    suffix: str = ".bin"
    via_api: bool = False  # the URL is on the provider's own host and needs its credentials

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "suffix": self.suffix, "via_api": self.via_api, "inline": self.data is not None}


@dataclass(frozen=True, slots=True)
class Units:
    """Billing units in the provider's own terms; ``price_key`` names the price-book entry."""

    unit: str
    quantity: Decimal
    price_key: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    """One submitted (or about to be submitted) request, as the journal keeps it."""

    job: str  # the caller's name for the work (e.g. "ep01/sc02-sh03/keyframe")
    provider: str
    model: str
    kind: Kind
    request_hash: str
    idempotency_key: str  # sent where the API accepts one (Kling external_task_id, ComfyUI prompt_id)
    attempt: int = 0
    task_id: str = ""
    status: str = SUBMITTING
    provider_status: str = ""
    outputs: list[Output] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # downloaded results, relative to the project
    hashes: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)  # the provider's usage report and metadata
    error: str = ""
    submitted_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class ProviderSettings:
    """``[providers.NAME]`` in the config (or ``REELFORGE_PROVIDERS__NAME__KEY``)."""

    base_url: str = ""
    concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 5
    poll_first_s: float = 2.0
    poll_max_s: float = 30.0
    poll_fraction: float = 0.07  # a poll waits at most this share of the time the task has run
    task_timeout_s: float = 1800.0
    extra: dict[str, str] = field(default_factory=dict)  # provider-specific (workflow files, cluster...)

    KEYS: ClassVar[tuple[str, ...]] = ("base_url", "concurrency", "timeout_s", "max_retries", "poll_first_s",
                                       "poll_max_s", "poll_fraction", "task_timeout_s")

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, str] | None) -> ProviderSettings:
        s = cls()
        for key, value in (data or {}).items():
            if key in ("concurrency", "max_retries"):
                try:
                    setattr(s, key, int(value))
                except ValueError:
                    raise InputError(f"[providers.{name}] {key} must be a whole number, got {value!r}") from None
            elif key in ("timeout_s", "poll_first_s", "poll_max_s", "poll_fraction", "task_timeout_s"):
                try:
                    setattr(s, key, float(value))
                except ValueError:
                    raise InputError(f"[providers.{name}] {key} must be a number, got {value!r}") from None
            elif key == "base_url":
                s.base_url = str(value).strip()
            else:
                s.extra[key] = str(value)
        if s.concurrency < 1:
            raise InputError(f"[providers.{name}] concurrency must be at least 1, got {s.concurrency}")
        if s.base_url and not s.base_url.startswith(("http://", "https://")):
            raise InputError(f"[providers.{name}] base_url {s.base_url!r} must start with http:// or https://")
        return s


class Provider(ABC):
    """Base of every adapter. Subclasses declare the class attributes and the five steps."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    vendor: ClassVar[str] = ""  # who is paid (for the ledger)
    default_base_url: ClassVar[str]
    env_keys: ClassVar[tuple[str, ...]] = ()  # every variable the adapter needs
    optional_env: ClassVar[tuple[str, ...]] = ()
    docs: ClassVar[tuple[str, ...]] = ()  # official documentation the adapter follows
    checked: ClassVar[str] = ""  # when those pages were read (YYYY-MM-DD)
    models: ClassVar[Mapping[str, ModelInfo]] = {}
    idempotent_submit: ClassVar[bool] = False  # the API de-duplicates by our idempotency key

    def __init__(self, settings: ProviderSettings | None = None, *, env: Mapping[str, str] | None = None,
                 transport: Any = None, sleep: Callable[[float], None] | None = None) -> None:
        self.settings = settings or ProviderSettings()
        self.base_url = (self.settings.base_url or self.default_base_url).rstrip("/")
        self._env = env
        self._keys: dict[str, Secret | None] = {}
        kwargs: dict[str, Any] = {"timeout_s": self.settings.timeout_s,
                                  "retry": RetryPolicy(max_retries=self.settings.max_retries),
                                  "auth_vars": self.env_keys, "transport": transport}
        if sleep is not None:
            kwargs["sleep"] = sleep
        self.http = Http(self.name, self.base_url, **kwargs)

    def close(self) -> None:
        self.http.close()

    # -- keys --------------------------------------------------------------------------------
    def secret(self, var: str, required: bool = True) -> Secret | None:
        if var not in self._keys:
            self._keys[var] = get_secret(var, self._env)
        value = self._keys[var]
        if value is None and required:
            raise ProviderAuthError(self.name, f"{var} is not set", hint=where_to_set(var))
        return value

    def require_keys(self) -> None:
        """Raise a clear error naming every missing variable; no request is sent."""
        missing = [v for v in self.env_keys if self.secret(v, required=False) is None]
        if missing:
            raise ProviderAuthError(self.name, f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                                    "not set", hint="; ".join(where_to_set(v) for v in missing))

    def check_auth(self) -> None:
        """Prove the key works with a call that costs nothing (default: the keys are present)."""
        self.require_keys()

    # -- models ------------------------------------------------------------------------------
    @classmethod
    def model_info(cls, model: str, kind: Kind) -> ModelInfo:
        info = cls.models.get(model)
        if info is not None:
            if info.kind != kind:
                raise InputError(f"{cls.name} model {model!r} makes {info.kind}, not {kind}",
                                 hint=f"{kind} models of {cls.name}: {', '.join(cls.model_names(kind)) or 'none'}")
            return info
        defaults = {"image": "image", "video": "video_second", "voice": "character"}
        return ModelInfo(model, kind, defaults[kind], note="not in the adapter's list: passed through as given")

    @classmethod
    def model_names(cls, kind: Kind | None = None) -> list[str]:
        return [m.name for m in cls.models.values() if kind is None or m.kind == kind]

    @classmethod
    def default_model(cls, kind: Kind) -> str | None:
        for m in cls.models.values():
            if m.kind == kind and m.default:
                return m.name
        return None

    @classmethod
    def kinds(cls) -> tuple[Kind, ...]:
        return tuple(k for k in KINDS if any(m.kind == k for m in cls.models.values()))

    # -- the steps -----------------------------------------------------------------------------
    @abstractmethod
    def estimate(self, req: GenRequest) -> list[Units]:
        """The units ``req`` will be billed for, before it is sent."""

    @abstractmethod
    def submit(self, req: GenRequest, task: Task) -> None:
        """Send ``req``: set ``task.task_id`` (async) or ``task.outputs`` and status SUCCEEDED (sync)."""

    def poll(self, task: Task) -> None:
        """Update ``task.status``/``provider_status``/``outputs``/``report`` (sync adapters: nothing to do)."""
        return None  # a synchronous API finished the task in submit

    def find(self, task: Task) -> bool:
        """Look a task up by its idempotency key after a crash during submit; True when found."""
        return False

    def refresh(self, task: Task) -> None:
        """Ask again for result URLs that expired (default: poll once more)."""
        self.poll(task)

    @abstractmethod
    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        """The provider's own usage report for a finished task, as :class:`Units`."""

    def download_headers(self, output: Output) -> dict[str, str] | None:
        """Headers for a download through the API host (``output.via_api``)."""
        return None
