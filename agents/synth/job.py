"""One episode's synth job: the input, the settings resolved from it and the config, and what the
steps of the run share (the review state, the price lookup, what was spent, the usage records).

:class:`EpisodeJob` is what every step takes instead of a long list of loose arguments: the
voices plan the shots into it, the picture engine reads it to make keyframes, the compositor
renders each :class:`ShotPlan` with it. Paths built from screenplay data (shot ids, character
names) go through :meth:`EpisodeJob.path`, which refuses anything outside the episode's folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.synth.quote import Caps, Spend, yuan_to_fen
from agents.synth.review import ReviewEntry
from agents.synth.schema import ENGINE_CHOICES, NARRATOR, TimedLine
from core.config import Config, SynthConfig
from core.errors import FieldError, InputError
from core.paths import check_name, safe_join
from core.prices import PriceLookup
from core.screenplay import Episode, LineKind, Scene, Series, Shot
from core.usage import UsageRecord
from pipelines.cards import LabelStyle
from pipelines.tts import TTSOptions

if TYPE_CHECKING:
    from agents.base import RunContext
    from agents.synth.providers import ProviderChoice

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
TIME_ZH = {"day": "日", "night": "夜", "dawn": "晨", "dusk": "昏", "unspecified": ""}
INT_EXT_ZH = {"INT": "内", "EXT": "外", "INT/EXT": "内/外"}


@dataclass(frozen=True, slots=True)
class SynthInput:
    series: Series
    episode: int
    out_dir: Path
    width: int = 1080
    height: int = 1920
    fps: Fraction = Fraction(25)
    crf: int = 20
    preset: str = "veryfast"
    audio_rate: int = 48000
    tts: str = "auto"
    label: LabelStyle = field(default_factory=LabelStyle)
    producer: str = "ReelForge"
    # None: take it from the config ([synth], [models], [tts])
    engine: str | None = None  # an EngineChoice, or the name of a plug-in picture engine
    image_model: str | None = None
    video_model: str | None = None
    steps: int | None = None
    gen_size: tuple[int, int] | None = None
    shared_dir: Path | None = None  # where character sheets live (default: out_dir/../characters)
    price: PriceLookup | None = None  # default: the price book named in the config
    providers: ProviderChoice | None = None  # --image/--video/--voice PROVIDER:MODEL (agents.synth.providers)

    def check(self) -> None:
        """Refuse bad values before any work, naming the field, the value and the fix."""
        if not isinstance(self.series, Series):
            raise FieldError("series", type(self.series).__name__, "is not a screenplay",
                             hint="load one with core.screenplay.Series.load('screenplay.json')")
        if isinstance(self.episode, bool) or not isinstance(self.episode, int) or self.episode < 1:
            raise FieldError("episode", self.episode, "must be a whole number from 1", hint="e.g. --episode 1")
        present = [e.number for e in self.series.episodes]
        if self.episode not in present:
            raise FieldError("episode", self.episode, "is not in the screenplay",
                             hint=f"episodes present: {present}" if present else "re-run the script stage")
        for shot in self.series.episode(self.episode).shots():
            check_name(shot.id, "shot id")  # it names the shot's files; every write also goes through safe_join
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise FieldError("out_dir", str(self.out_dir), "is a file, not a folder", hint="choose a folder")
        for name, value in (("width", self.width), ("height", self.height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 8192 or value % 2:
                raise FieldError(name, value, "must be an even number of pixels from 16 to 8192",
                                 hint="e.g. 1080x1920 or 720x1280")
        if not isinstance(self.fps, Fraction | int) or not 0 < self.fps <= 240:
            raise FieldError("fps", self.fps, "must be a positive frame rate up to 240", hint='e.g. 25 or "30000/1001"')
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise FieldError("crf", self.crf, "must be a whole number from 0 to 51", hint="20 is a good default")
        if self.preset not in X264_PRESETS:
            raise FieldError("preset", self.preset, "is not an encoder preset", hint=f"use one of {', '.join(X264_PRESETS)}")
        if isinstance(self.audio_rate, bool) or not isinstance(self.audio_rate, int) \
                or not 8000 <= self.audio_rate <= 192000:
            raise FieldError("audio_rate", self.audio_rate, "must be a sample rate from 8000 to 192000 Hz",
                             hint="48000 for video")
        if not isinstance(self.tts, str) or not self.tts.strip():
            raise FieldError("tts", self.tts, "must name a voice engine", hint="auto, espeak-ng, piper, http or silence")
        if not self.producer.strip():
            raise FieldError("producer", self.producer, "must not be empty: the AI label names the producer",
                             hint="set [label] producer")
        if self.engine is not None:
            from agents.synth import PICTURE_ENGINES

            if self.engine.lower() not in ("auto", *PICTURE_ENGINES.names()):
                raise FieldError("engine", self.engine, "is not a picture engine",
                                 hint=f"use one of {', '.join(('auto', *PICTURE_ENGINES.names()))}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or not 1 <= self.steps <= 1000):
            raise FieldError("steps", self.steps, "must be a whole number from 1 to 1000", hint="e.g. --steps 30")
        if self.gen_size is not None and (len(self.gen_size) != 2 or min(self.gen_size) < 8 or max(self.gen_size) > 4096):
            raise FieldError("gen_size", self.gen_size, "must be WIDTHxHEIGHT, each 8 to 4096 pixels",
                             hint="e.g. --size 768x1344")


@dataclass(slots=True)
class Settings:
    """What the run uses, resolved from the input and the config."""

    engine: str  # the picture engine (a name in agents.synth.PICTURE_ENGINES)
    image_model: str
    video_model: str
    steps: int | None
    guidance: float | None
    gen_size: tuple[int, int] | None
    synth: SynthConfig
    device: str
    tts: TTSOptions
    loudness: float
    caps: Caps


def parse_size(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    w, sep, h = text.lower().partition("x")
    try:
        size = int(w), int(h)
    except ValueError:
        raise FieldError("[synth] size", text, "must look like 768x1344") from None
    if not sep or size[0] < 8 or size[1] < 8:
        raise FieldError("[synth] size", text, "must be WIDTHxHEIGHT, each at least 8 pixels", hint="e.g. 768x1344")
    return size


def resolve_settings(inp: SynthInput, config: Config) -> Settings:
    from agents.synth import PICTURE_ENGINES

    sc = getattr(config, "synth", None) or SynthConfig()
    engine = (inp.engine or sc.engine or "auto").lower()
    if engine != "auto" and engine not in PICTURE_ENGINES:
        known = ", ".join(dict.fromkeys((*ENGINE_CHOICES, *PICTURE_ENGINES.names())))
        raise FieldError("engine" if inp.engine else "[synth] engine", engine, "is not a picture engine",
                         hint=f"use one of {known}")
    if inp.providers is not None and inp.providers.image:
        if engine not in ("auto", "providers"):
            raise FieldError("engine", engine, "cannot be combined with --image PROVIDER:MODEL",
                             hint="leave --engine out (the provider makes the pictures), or drop --image")
        engine = "providers"
    elif engine == "providers":
        raise InputError("the providers picture engine needs an image model",
                         hint="pass --image PROVIDER:MODEL, e.g. --image ark:doubao-seedream-4-0-250828")
    image_model = inp.image_model if inp.image_model is not None else config.models.image_model
    video_model = inp.video_model if inp.video_model is not None else config.models.video_model
    if engine == "auto":
        engine = "diffusers" if image_model else "animatic"
    if engine == "diffusers" and not image_model:
        raise InputError("the diffusers engine needs an image model",
                         hint="pass --image-model DIR (a diffusers folder) or set [models] image_model")
    steps = inp.steps if inp.steps is not None else (sc.steps or None)
    if steps is not None and steps < 1:
        raise FieldError("[synth] steps", steps, "must be at least 1")
    caps = Caps()
    if sc.budget_cny:
        try:
            caps.budget_fen = yuan_to_fen(Decimal(sc.budget_cny))
        except ArithmeticError as e:
            raise FieldError("[synth] budget_cny", sc.budget_cny, "is not a number", hint='write e.g. "50.00"') from e
    if sc.gpu_seconds_cap:
        try:
            caps.gpu_seconds = Decimal(sc.gpu_seconds_cap)
        except ArithmeticError as e:
            raise FieldError("[synth] gpu_seconds_cap", sc.gpu_seconds_cap, "is not a number", hint='e.g. "3600"') from e
    return Settings(engine=engine, image_model=image_model or "", video_model=video_model or "", steps=steps,
                    guidance=sc.guidance or None, gen_size=inp.gen_size or parse_size(sc.size), synth=sc,
                    device=config.device, tts=TTSOptions.from_config(config.tts),
                    loudness=float(getattr(config.tts, "loudness_lufs", -16.0)), caps=caps)


@dataclass(slots=True)
class ShotPlan:
    """One shot, timed: its lines placed to the frame, their speech, its length and place in the episode."""

    scene_index: int  # counts scenes from 1
    scene: Scene
    shot: Shot
    timed: list[TimedLine]
    speech: list[np.ndarray]
    frames: int
    offset: int = 0  # first frame of the shot in the episode
    notes: list[str] = field(default_factory=list)

    @property
    def first_in_scene(self) -> bool:
        return self.shot is self.scene.shots[0]

    @property
    def last_in_scene(self) -> bool:
        return self.shot is self.scene.shots[-1]


@dataclass(slots=True)
class EpisodeJob:
    """Everything one episode's run shares between its steps."""

    inp: SynthInput
    settings: Settings
    ctx: RunContext
    episode: Episode
    review: dict[str, ReviewEntry] = field(default_factory=dict)
    prices: PriceLookup | None = None
    spent: Spend = field(default_factory=Spend)
    usage: list[UsageRecord] = field(default_factory=list)
    plans: list[ShotPlan] = field(default_factory=list)

    # -- shorthands ------------------------------------------------------------------------
    @property
    def out_dir(self) -> Path:
        return self.inp.out_dir

    @property
    def frame(self) -> tuple[int, int]:
        return self.inp.width, self.inp.height

    @property
    def fps(self) -> Fraction:
        return Fraction(self.inp.fps)

    @property
    def rate(self) -> int:
        return self.inp.audio_rate

    @property
    def title(self) -> str:
        return self.inp.series.title

    def review_of(self, shot_id: str) -> ReviewEntry:
        return self.review.get(shot_id) or ReviewEntry()

    def path(self, *parts: str) -> Path:
        """A path inside the episode's folder built from screenplay data (refused if it leads out)."""
        return safe_join(self.out_dir, *parts)

    @property
    def sheet_dir(self) -> Path:
        """Where character sheets live: shared by every episode of the series."""
        return self.inp.shared_dir or (self.out_dir.parent / "characters")

    def sheet_path(self, name: str) -> Path:
        return safe_join(self.sheet_dir, f"{safe_file_name(name)}.png")

    @property
    def calibration_path(self) -> Path:
        return self.out_dir.parent / "calibration.json"

    def scene_of(self, shot: Shot) -> Scene:
        return next(sc for sc in self.episode.scenes if shot in sc.shots)


# ------------------------------------------------------------------------------------------
def speaker_of(line_speaker: str, kind: str) -> str:
    """The voice a line is spoken in ("" for the narrator)."""
    if kind == LineKind.NARRATION or not line_speaker or line_speaker == NARRATOR:
        return ""
    return line_speaker


def scene_header(ep: Episode, scene_index: int, scene: Scene) -> str:
    parts = [f"第{ep.number}集 场{scene_index}"]
    tod = TIME_ZH.get(scene.time_of_day, scene.time_of_day)
    if tod:
        parts.append(tod)
    parts.append(INT_EXT_ZH.get(scene.int_ext, scene.int_ext))
    if scene.place:
        parts.append(scene.place)
    return " · ".join(parts)


def content_hash(payload: Any) -> str:
    """A stable hash of plain data (the cache keys of speech, keyframes and clips)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def safe_file_name(name: str) -> str:
    """A character name as a file name (letters of any script, digits, '-' and '_')."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "character"
