"""Text-to-speech engines behind one small interface, with an explicit registry.

Offline engines shipped with the foundation:

* ``espeak-ng`` - Debian's espeak-ng program (``cmn`` Mandarin voice), GPL-3.0;
* ``espeakng-loader`` - the same synthesiser from the PyPI package ``espeakng-loader``
  (library and voice data inside the wheel, no root needed), called through ctypes;
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
from typing import ClassVar

import numpy as np

from core.errors import InputError, ReelForgeError

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


class TTSEngine(ABC):
    name: ClassVar[str]
    licence: ClassVar[str]
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def available(cls) -> bool:
        """True when the engine can run on this machine."""

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

    @classmethod
    def available(cls) -> bool:
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

    @classmethod
    def available(cls) -> bool:
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
    licence = "n/a"
    description = "no voice: silent audio as long as the reading time of the text"

    @classmethod
    def available(cls) -> bool:
        return True

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        chars = max(1, len(re.sub(r"\s", "", speakable(text))))
        seconds = Fraction(chars) / CHARS_PER_SECOND
        rate = 24000
        return Speech(np.zeros(int(seconds * rate), np.float32), rate, self.name, "none", text)


ENGINES: dict[str, type[TTSEngine]] = {cls.name: cls for cls in (EspeakNGProgram, EspeakNGLibrary, SilenceEngine)}
_AUTO_ORDER = ("espeak-ng", "espeakng-loader")


def available_engines() -> list[str]:
    return [name for name, cls in ENGINES.items() if cls.available()]


def get_engine(name: str = "auto") -> TTSEngine:
    """Return an engine by name; ``auto`` picks the first installed voice, else silence (logged)."""
    if name == "auto":
        for candidate in _AUTO_ORDER:
            if ENGINES[candidate].available():
                return ENGINES[candidate]()
        log.warning("no offline TTS engine is installed (espeak-ng or espeakng-loader): using silence")
        return SilenceEngine()
    if name not in ENGINES:
        raise InputError(f"unknown TTS engine {name!r}", hint=f"known engines: {', '.join(ENGINES)}")
    cls = ENGINES[name]
    if not cls.available():
        raise InputError(f"TTS engine {name!r} is not installed here",
                         hint="apt-get install espeak-ng, or pip install espeakng-loader")
    return cls()


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
