"""Synth agent: turn an episode of the screenplay into shot clips (picture + voice).

Two picture engines:

* ``animatic`` (CPU, always there): a styled plate per place (the user's own image when one
  matches the place's name, else a generated plate), the speaker's card as a foreground layer,
  camera moves with two-layer parallax, Chinese subtitles in the safe area and the visible
  "AI生成" label;
* ``diffusers`` (any local diffusers pipeline, GPU or CPU): a keyframe per shot from its visual
  prompt with the characters' appearance carried in, a reference sheet per character, a
  consistency score per shot, then motion from an image-to-video model when one is configured
  or a camera move on the keyframe.

Sound: a voice per character (one voice across episodes), lines laid out with a breath before,
pauses between and a tail after; the spoken duration drives each shot's length so picture and
dialogue line up to the frame. The episode's voice, music bed (ducked under dialogue) and sound
effects are mixed once and normalised to the loudness target (BS.1770 / EBU R128), then cut
into each shot's exact samples.

Everything is cached under ``synth/epNN/`` with keys of what shaped it (speech per line,
keyframes per shot with their seeds and settings, clips per shot), so an interrupted run
resumes, an edited line re-renders only its shot, and a keyframe can be made again exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.base import Agent, AgentResult, RunContext
from core.aigc import AIGC_KEY, label_metadata, make_label, read_label
from core.config import Config, SynthConfig
from core.errors import InputError, ReelForgeError
from core.fonts import find_cjk_font
from core.media import VideoWriter, concat, probe, resample_audio, samples_for_frames, write_wav
from core.screenplay import Episode, LineKind, Scene, Series, Shot
from core.usage import UsageRecord, seconds_since
from pipelines.audio import (
    Cue,
    MixSettings,
    SoundLibrary,
    fade,
    level_to,
    loop_to_length,
    mix_episode,
    place,
)
from pipelines.cards import CardSpec, LabelStyle, plate, render_cover, render_layers
from pipelines.label import write_wav_label
from pipelines.motion import CameraMove, Overlay, Sprite, prepare_plate
from pipelines.tts import (
    Speech,
    TTSEngine,
    TTSError,
    TTSOptions,
    VoiceSpec,
    assign_voice,
    get_engine,
)

log = logging.getLogger(__name__)

RENDER_VERSION = 2  # bump when the look of a shot or the timing rules change
NARRATOR = "旁白"
ENGINES = ("auto", "animatic", "diffusers")

# Timing rules (seconds): a breath before the first line, a pause between lines, a tail after.
LEAD_IN = Fraction(1, 4)
GAP = Fraction(1, 5)
TAIL = Fraction(7, 20)
MIN_SHOT = Fraction(3, 2)
MAX_SILENT_SHOT = Fraction(4)
LINE_LUFS = -18.0  # every line is levelled to this before the episode mix (even voices)

TIME_ZH = {"day": "日", "night": "夜", "dawn": "晨", "dusk": "昏", "unspecified": ""}
INT_EXT_ZH = {"INT": "内", "EXT": "外", "INT/EXT": "内/外"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# (model, unit, day) -> yuan per unit, or None when the price book has no price for it
PriceFn = Callable[[str, str, date], Decimal | None]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimedLine(_Model):
    speaker: str
    text: str
    kind: str
    start: int  # frame within the shot
    end: int  # frame one past the end of the speech
    voice: str = ""
    engine: str = ""


class ShotRender(_Model):
    id: str
    scene_id: str
    clip: str  # paths relative to the episode's synth folder
    audio: str
    keyframe: str
    frames: int
    lines: list[TimedLine]
    key: str
    notes: list[str] = []
    # optional, added by the scene-synthesis engines (readers may ignore them)
    picture: str = "animatic"  # animatic | diffusers
    motion: str = "static"  # static | camera:<move> | i2v:<pipeline>
    prompt: str = ""  # the keyframe prompt actually used
    seed: int | None = None
    keyframe_record: str = ""  # JSON with every generation setting (diffusers engine)
    consistency: float | None = None
    consistency_method: str = ""
    review: str = "pending"  # pending | approved
    picture_key: str = ""  # everything that shaped the picture; the sound alone can change without it


class EpisodeRender(_Model):
    episode: int
    title: str
    engine: str
    tts_engine: str
    fps: str
    width: int
    height: int
    audio_rate: int
    shots: list[ShotRender]
    # optional
    cover: str = ""
    loudness_lufs: float | None = None
    peak_db: float | None = None
    music: list[str] = []
    notes: list[str] = []

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shots)

    def unapproved(self) -> list[str]:
        """Shots a person has not approved yet (the review gate before the cut)."""
        return [s.id for s in self.shots if s.review != "approved"]

    def save(self, path: Path) -> Path:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> EpisodeRender:
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise InputError(f"{str(path)!r} does not exist", hint="run the synth stage first") from e


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
    engine: str | None = None
    image_model: str | None = None
    video_model: str | None = None
    steps: int | None = None
    gen_size: tuple[int, int] | None = None
    shared_dir: Path | None = None  # where character sheets live (default: out_dir/../characters)
    price: PriceFn | None = None  # default: the ledger's price book when installed


class BudgetExceeded(InputError):
    """A run would spend more than the cap in the config; nothing more was generated."""


# ------------------------------------------------------------------------------------------
# settings, quote, price book
# ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Settings:
    """What the run uses, resolved from the input and the config."""

    engine: str
    image_model: str
    video_model: str
    steps: int | None
    guidance: float | None
    gen_size: tuple[int, int] | None
    synth: SynthConfig
    device: str
    tts: TTSOptions
    loudness: float
    budget_fen: int | None
    gpu_cap: Decimal | None


def _parse_size(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    w, sep, h = text.lower().partition("x")
    try:
        size = int(w), int(h)
    except ValueError:
        raise InputError(f"size {text!r} must look like 768x1344") from None
    if not sep or size[0] < 8 or size[1] < 8:
        raise InputError(f"size {text!r} must be WIDTHxHEIGHT")
    return size


def yuan_to_fen(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def resolve_settings(inp: SynthInput, config: Config) -> Settings:
    sc = getattr(config, "synth", None) or SynthConfig()
    engine = (inp.engine or sc.engine or "auto").lower()
    if engine not in ENGINES:
        raise InputError(f"unknown synth engine {engine!r}", hint=f"use one of {', '.join(ENGINES)}")
    image_model = inp.image_model if inp.image_model is not None else config.models.image_model
    video_model = inp.video_model if inp.video_model is not None else config.models.video_model
    if engine == "auto":
        engine = "diffusers" if image_model else "animatic"
    if engine == "diffusers" and not image_model:
        raise InputError("the diffusers engine needs an image model",
                         hint="pass --image-model DIR (a diffusers folder) or set [models] image_model")
    steps = inp.steps if inp.steps is not None else (sc.steps or None)
    if steps is not None and steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    budget = None
    if sc.budget_cny:
        try:
            budget = yuan_to_fen(Decimal(sc.budget_cny))
        except ArithmeticError as e:
            raise InputError(f"[synth] budget_cny {sc.budget_cny!r} is not a number", hint='write e.g. "50.00"') from e
    gpu_cap = None
    if sc.gpu_seconds_cap:
        try:
            gpu_cap = Decimal(sc.gpu_seconds_cap)
        except ArithmeticError as e:
            raise InputError(f"[synth] gpu_seconds_cap {sc.gpu_seconds_cap!r} is not a number") from e
    return Settings(engine=engine, image_model=image_model or "", video_model=video_model or "", steps=steps,
                    guidance=sc.guidance or None, gen_size=inp.gen_size or _parse_size(sc.size), synth=sc,
                    device=config.device, tts=TTSOptions.from_config(config.tts),
                    loudness=float(getattr(config.tts, "loudness_lufs", -16.0)), budget_fen=budget, gpu_cap=gpu_cap)


def ledger_price_fn() -> PriceFn | None:
    """The ledger's price book as a (model, unit, day) -> yuan-per-unit function, if installed."""
    try:
        from ledger.pricebook import PriceBook  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        book = PriceBook.default()
    except Exception as e:  # noqa: BLE001 - a broken price book must not stop a quote; it is reported
        log.warning("the ledger's price book could not be read (%s): quoting without prices", e)
        return None

    def price(model: str, unit: str, day: date) -> Decimal | None:
        entry = book.lookup(model, model, unit, day)
        if entry is None:
            return None
        return Decimal(entry.price) / Decimal(entry.per)

    return price


@dataclass(slots=True)
class QuoteLine:
    what: str
    model: str
    unit: str
    quantity: Decimal
    price: Decimal | None = None  # yuan per unit
    cost_fen: int | None = None


@dataclass(slots=True)
class Quote:
    """What an episode will cost before it is made (dry run)."""

    episode: int
    engine: str
    device: str
    images: int = 0
    keyframes_cached: int = 0
    video_clips: int = 0
    gpu_seconds: Decimal = Decimal(0)
    tts_characters: int = 0
    api_calls: int = 0
    lines: list[QuoteLine] = field(default_factory=list)
    priced: bool = False
    cost_fen: int = 0
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [f"报价 Quote · 第{self.episode}集 · engine {self.engine} · device {self.device}",
                f"{'item':<26}{'model':<28}{'unit':<13}{'quantity':>10}{'¥/unit':>12}{'¥':>10}"]
        for ln in self.lines:
            price = "?" if ln.price is None else f"{ln.price:.6f}".rstrip("0").rstrip(".")
            cost = "?" if ln.cost_fen is None else f"{Decimal(ln.cost_fen) / 100:.2f}"
            rows.append(f"{ln.what:<26}{ln.model[:27]:<28}{ln.unit:<13}{ln.quantity:>10}{price:>12}{cost:>10}")
        total = f"{Decimal(self.cost_fen) / 100:.2f}" if self.priced else "unpriced"
        rows.append(f"images {self.images} (+{self.keyframes_cached} cached), video clips {self.video_clips}, "
                    f"GPU seconds ~{self.gpu_seconds}, total ¥ {total}")
        rows.extend(f"note: {n}" for n in self.notes)
        return "\n".join(rows)


# ------------------------------------------------------------------------------------------
# review gate
# ------------------------------------------------------------------------------------------
REVIEW_FILE = "review.json"


def load_review(out_dir: Path) -> dict[str, dict[str, Any]]:
    path = out_dir / REVIEW_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise InputError(f"{str(path)!r} is not valid JSON: {e}", hint="fix or delete it (shots go back to pending)") from e
    return {str(k): dict(v) for k, v in data.get("shots", {}).items()}


SHOT_SETTINGS = {"seed": int, "steps": int, "guidance": float, "scheduler": str, "negative_prompt": str}


def review_shot(out_dir: Path, shot_id: str, action: str, prompt: str | None = None,
                settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The review gate: ``approve``, ``prompt`` (edit the keyframe prompt), ``regenerate`` (new seed),
    ``set`` (this shot's own seed, steps, guidance, scheduler or negative prompt) or ``reset``.
    Edits take effect on the next synth run; the shot is then pending again until approved."""
    if action not in ("approve", "prompt", "regenerate", "set", "reset"):
        raise InputError(f"unknown review action {action!r}", hint="approve, prompt, regenerate, set or reset")
    render_path = out_dir / "render.json"
    render = EpisodeRender.load(render_path) if render_path.exists() else None
    if render is not None and shot_id not in {s.id for s in render.shots}:
        raise InputError(f"shot {shot_id!r} is not in episode {render.episode}",
                         hint=f"shots: {', '.join(s.id for s in render.shots)}")
    shots = load_review(out_dir)
    entry = shots.setdefault(shot_id, {"status": "pending", "prompt": None, "seed_offset": 0})
    if action == "approve":
        entry["status"] = "approved"
    elif action == "prompt":
        if not prompt or not prompt.strip():
            raise InputError("an edited prompt must not be empty")
        entry.update(status="pending", prompt=prompt.strip())
    elif action == "regenerate":
        entry.update(status="pending", seed_offset=int(entry.get("seed_offset", 0)) + 1)
    elif action == "set":
        own = dict(entry.get("settings", {}))
        for key, value in (settings or {}).items():
            if key not in SHOT_SETTINGS:
                raise InputError(f"unknown shot setting {key!r}", hint=f"use {', '.join(SHOT_SETTINGS)}")
            try:
                own[key] = SHOT_SETTINGS[key](value)
            except (TypeError, ValueError) as e:
                raise InputError(f"shot setting {key}={value!r} is not a {SHOT_SETTINGS[key].__name__}") from e
        entry.update(status="pending", settings=own, seed_offset=0)
    else:
        entry.update(status="pending", prompt=None, seed_offset=0, settings={})
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (REVIEW_FILE + ".tmp")
    tmp.write_text(json.dumps({"shots": shots}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / REVIEW_FILE)
    if render is not None:  # approval needs no re-render: reflect it in render.json now
        for s in render.shots:
            if s.id == shot_id:
                s.review = "approved" if entry["status"] == "approved" else "pending"
        render.save(render_path)
    return entry


# ------------------------------------------------------------------------------------------
def _speaker_of(line_speaker: str, kind: str) -> str:
    if kind == LineKind.NARRATION or not line_speaker or line_speaker == NARRATOR:
        return ""
    return line_speaker


def _header(ep: Episode, scene_index: int, scene: Scene) -> str:
    parts = [f"第{ep.number}集 场{scene_index}"]
    tod = TIME_ZH.get(scene.time_of_day, scene.time_of_day)
    if tod:
        parts.append(tod)
    parts.append(INT_EXT_ZH.get(scene.int_ext, scene.int_ext))
    if scene.place:
        parts.append(scene.place)
    return " · ".join(parts)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(slots=True)
class _ShotPlan:
    si: int
    scene: Scene
    shot: Shot
    timed: list[TimedLine]
    speech: list[np.ndarray]
    frames: int
    offset: int = 0  # first frame of the shot in the episode
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Spend:
    gpu_seconds: Decimal = Decimal(0)
    cost_fen: int = 0


class SynthAgent(Agent[SynthInput, EpisodeRender]):
    name = "synth"
    description = ("screenplay episode -> shot clips: keyframes (diffusers) or animatic plates, motion, voices, "
                   "music, subtitles and the AI label")

    def __init__(self) -> None:
        self._keyframes: Any = None  # KeyframePipeline, kept between episodes of one batch
        self._video: Any = None

    # ---------------------------------------------------------------------------------------
    def quote(self, inp: SynthInput, config: Config) -> Quote:
        """Dry run: what generating this episode will take and cost (nothing is generated)."""
        settings = resolve_settings(inp, config)
        ep = inp.series.episode(inp.episode)
        return self._quote(inp, settings, ep, self._prices(inp))

    def _prices(self, inp: SynthInput) -> PriceFn | None:
        return inp.price if inp.price is not None else ledger_price_fn()

    def _quote(self, inp: SynthInput, s: Settings, ep: Episode, prices: PriceFn | None) -> Quote:
        from pipelines.diffusion import Calibration, native_size_from_folder

        device = _device_name(s.device) if s.engine == "diffusers" else "cpu"
        q = Quote(episode=ep.number, engine=s.engine, device=device)
        today = date.today()
        tts_chars = sum(len(ln.text) for sc in ep.scenes for sh in sc.shots for ln in sh.lines)
        if s.engine == "diffusers":
            review = load_review(inp.out_dir)
            shots = [(sc, sh) for sc in ep.scenes for sh in sc.shots]
            cached = 0
            for _, sh in shots:
                rec_path = inp.out_dir / "keyframes" / f"{sh.id}.json"
                if rec_path.exists() and (inp.out_dir / "keyframes" / f"{sh.id}.png").exists():
                    try:
                        stored = json.loads(rec_path.read_text(encoding="utf-8"))
                    except ValueError:
                        stored = {}
                    want = self._keyframe_request_key(inp, s, ep, sh, review.get(sh.id, {}))
                    if stored.get("request_key") == want:
                        cached += 1
            sheets = 0
            if s.synth.consistency not in ("off", "prompt"):
                present = {c for _, sh in shots for c in sh.characters}
                sheet_dir = self._sheet_dir(inp)
                sheets = sum(1 for ch in inp.series.characters if ch.name in present and ch.appearance
                             and not (sheet_dir / f"{_safe_name(ch.name)}.png").exists())
            q.images = len(shots) - cached + sheets
            q.keyframes_cached = cached
            steps = s.steps or 30
            native = native_size_from_folder(s.image_model) if Path(s.image_model).is_dir() else None
            w, h = s.gen_size or native or (1024, 1024)
            if s.gen_size is None and native is None:
                q.notes.append("the model's native size is unknown before loading: 1024x1024 assumed")
            calib = Calibration.load(self._calibration_path(inp))
            per = calib.get(Path(s.image_model).name, device)
            if per is None:
                per = 0.15 if device.startswith("cuda") else 20.0
                q.notes.append("GPU seconds are a rough default (no run measured yet on this device); "
                               "the first run calibrates them")
            q.gpu_seconds = Decimal(str(round(per * steps * (w * h / 1e6) * q.images, 1)))
            if s.video_model:
                q.video_clips = len(shots)
                per_clip = 60.0 if device.startswith("cuda") else 600.0
                q.gpu_seconds += Decimal(str(per_clip * q.video_clips))
                q.notes.append("video seconds use a rough default per clip")
            unit = "gpu_second" if device.startswith("cuda") else "cpu_second"
            q.lines.append(QuoteLine("keyframes + sheets", Path(s.image_model).name, "image", Decimal(q.images)))
            q.lines.append(QuoteLine("generation time", Path(s.image_model).name, unit, q.gpu_seconds))
        if inp.tts == "http":
            q.tts_characters = tts_chars
            q.api_calls = sum(len(sh.lines) for sc in ep.scenes for sh in sc.shots)
            q.lines.append(QuoteLine("TTS characters", s.tts.http_model or "http", "character", Decimal(tts_chars)))
            q.lines.append(QuoteLine("TTS calls", s.tts.http_model or "http", "api_call", Decimal(q.api_calls)))
        if prices is None:
            q.notes.append("no price book installed (ledger): the quote counts GPU seconds and units only")
            return q
        q.priced = True
        for ln in q.lines:
            ln.price = prices(ln.model, ln.unit, today)
            if ln.price is None:
                q.priced = False
                q.notes.append(f"no price for {ln.model}/{ln.unit} in the price book")
                continue
            ln.cost_fen = yuan_to_fen(ln.price * ln.quantity)
            q.cost_fen += ln.cost_fen
        return q

    def _check_budget(self, s: Settings, q: Quote, spent: _Spend, ctx: RunContext) -> None:
        if s.gpu_cap is not None and spent.gpu_seconds + q.gpu_seconds > s.gpu_cap:
            raise BudgetExceeded(
                f"episode {q.episode} needs about {q.gpu_seconds} GPU seconds; with {spent.gpu_seconds} spent "
                f"that exceeds the cap of {s.gpu_cap}",
                hint="raise [synth] gpu_seconds_cap, lower --steps or the size, or run fewer shots")
        if s.budget_fen is None:
            return
        if not q.priced:
            ctx.warn("a budget cap is set but the run cannot be priced (no price book or missing prices); "
                     "only the GPU-seconds cap is enforced")
            return
        if spent.cost_fen + q.cost_fen > s.budget_fen:
            raise BudgetExceeded(
                f"episode {q.episode} would cost ¥{Decimal(q.cost_fen) / 100:.2f}; with ¥{Decimal(spent.cost_fen) / 100:.2f} "
                f"spent that exceeds the cap of ¥{Decimal(s.budget_fen) / 100:.2f}",
                hint="raise [synth] budget_cny, or lower --steps / the size")

    # ---------------------------------------------------------------------------------------
    def run(self, inp: SynthInput, ctx: RunContext) -> AgentResult[EpisodeRender]:
        start = time.perf_counter()
        if inp.width % 2 or inp.height % 2:
            raise InputError(f"render size {inp.width}x{inp.height} must be even", hint="e.g. 1080x1920 or 720x1280")
        s = resolve_settings(inp, ctx.config)
        ep = inp.series.episode(inp.episode)
        shots = [(si, scene, shot) for si, scene in enumerate(ep.scenes, 1) for shot in scene.shots]
        if not shots:
            raise InputError(f"episode {inp.episode} has no shots", hint="edit screenplay.json or re-run the script stage")
        engine = get_engine(inp.tts, s.tts)
        if engine.name == "silence" and inp.tts == "auto":
            ctx.warn("no offline Chinese voice installed: the episode has a silent voice track "
                     "(apt-get install espeak-ng, or pip install espeakng-loader)")
        font = find_cjk_font()
        inp.out_dir.mkdir(parents=True, exist_ok=True)
        shot_dir = inp.out_dir / "shots"
        shot_dir.mkdir(parents=True, exist_ok=True)
        review = load_review(inp.out_dir)
        usage: list[UsageRecord] = []
        prices = self._prices(inp)
        quote = self._quote(inp, s, ep, prices)
        spent = _Spend()
        self._check_budget(s, quote, spent, ctx)
        if quote.notes and s.engine == "diffusers":
            for note in quote.notes:
                log.info("quote: %s", note)

        # 1. voices and timing
        ctx.step(0.0, "配音 · voices")
        voices = self._voices(inp.series)
        plans, speech_seconds, tts_calls = self._plan(inp, ctx, engine, voices, ep, shots)
        # 2. the episode's sound, mixed once, cut per shot
        audio, mix_report, music_used, sfx_notes = self._mix(inp, s, ep, plans)
        # 3. pictures
        pictures: dict[str, dict[str, Any]] = {}
        if s.engine == "diffusers":
            pictures = self._keyframes_for(inp, s, ctx, ep, plans, review, usage, spent, prices, quote)
        # 4. shot clips
        renders: list[ShotRender] = []
        reused = 0
        rate = inp.audio_rate
        for n, plan in enumerate(plans):
            ctx.step(0.6 + 0.4 * n / len(plans), f"合成镜头 {n + 1}/{len(plans)} · shot {plan.shot.id}")
            a0 = samples_for_frames(plan.offset, inp.fps, rate)
            a1 = samples_for_frames(plan.offset + plan.frames, inp.fps, rate)
            shot_audio = audio[a0:a1]
            pic = pictures.get(plan.shot.id, {})
            picture_key = self._key(inp, s, engine, ep, plan, pic)
            key = _hash({"picture": picture_key,
                         "audio": hashlib.sha256(np.ascontiguousarray(shot_audio).tobytes()).hexdigest()})
            meta_path = shot_dir / f"{plan.shot.id}.json"
            status = "approved" if review.get(plan.shot.id, {}).get("status") == "approved" else "pending"
            cached = self._cached(meta_path, key, inp.out_dir)
            if cached is not None:
                cached.review = status
                renders.append(cached)
                reused += 1
                continue
            same_picture = self._cached(meta_path, picture_key, inp.out_dir, field="picture_key")
            if same_picture is not None:
                # only the sound changed (an edited line elsewhere moved the episode's loudness or
                # music): rewrite the WAV and swap the clip's audio, keeping its video packets
                render = self._resound(inp, same_picture, shot_audio, key)
                reused += 1
            else:
                render = self._render_shot(inp, s, ctx, ep, plan, key, shot_dir, shot_audio, pic)
                render.picture_key = picture_key
            render.review = status
            meta_path.write_text(json.dumps(render.model_dump(mode="json"), ensure_ascii=False, indent=2), encoding="utf-8")
            renders.append(render)
        ctx.step(1.0, "镜头合成完成 · shots done")
        cover = self._cover(inp, ep, plans, pictures)
        notes = sorted({note for r in renders for note in r.notes} | set(sfx_notes))
        if mix_report.lufs > -70 and abs(mix_report.lufs - s.loudness) > 0.5:
            notes.append(f"episode loudness {mix_report.lufs} LUFS misses the target {s.loudness}")
        elif mix_report.reduction_db > 6:
            log.info("the peak limiter took up to %.1f dB off the loudest moments", mix_report.reduction_db)
        result = EpisodeRender(
            episode=ep.number, title=ep.title, engine=s.engine, tts_engine=engine.name,
            fps=str(inp.fps), width=inp.width, height=inp.height, audio_rate=rate, shots=renders,
            cover=cover.relative_to(inp.out_dir).as_posix() if cover else "", loudness_lufs=mix_report.lufs,
            peak_db=mix_report.peak_db, music=music_used, notes=notes,
        )
        render_path = result.save(inp.out_dir / "render.json")
        for note in notes:
            ctx.warn(note)
        elapsed = seconds_since(start, time.perf_counter())
        usage.insert(0, UsageRecord(stage=self.name, engine="animatic" if s.engine == "animatic" else "compositor",
                                    unit="cpu_second", quantity=elapsed,
                                    seconds=elapsed, model="animatic-cards" if s.engine == "animatic" else "compositor",
                                    device="cpu", licence="Apache-2.0 (ReelForge)",
                                    detail={"episode": ep.number, "shots": len(renders), "reused": reused}))
        for eng, secs in speech_seconds.items():
            cls_licence = type(engine).licence if eng == engine.name else "n/a"
            usage.append(UsageRecord(stage=self.name, engine=eng, unit="audio_second",
                                     quantity=Decimal(secs.numerator) / Decimal(secs.denominator),
                                     model=engine.model or eng, device="cpu", licence=cls_licence,
                                     vendor=engine.vendor if eng == engine.name else "",
                                     detail={"episode": ep.number}))
        if tts_calls and engine.vendor:
            usage.append(UsageRecord(stage=self.name, engine=engine.name, unit="api_call", quantity=Decimal(tts_calls[0]),
                                     model=engine.model or engine.name, vendor=engine.vendor, licence=engine.licence,
                                     detail={"episode": ep.number}))
            usage.append(UsageRecord(stage=self.name, engine=engine.name, unit="character", quantity=Decimal(tts_calls[1]),
                                     model=engine.model or engine.name, vendor=engine.vendor, licence=engine.licence,
                                     detail={"episode": ep.number}))
        usage.append(UsageRecord(stage=self.name, engine="font", unit="use", quantity=Decimal(1), model=font.name,
                                 licence=font.licence, detail={"path": str(font.path), "source": font.source}))
        ctx.record(usage)
        log.info("synth: episode %d, %d shots (%d reused), %d frames, %s LUFS", ep.number, len(renders), reused,
                 result.total_frames, mix_report.lufs)
        return AgentResult(output=result, engine=f"{s.engine}+{engine.name}", files=[render_path], usage=usage,
                           notes=notes)

    # ---------------------------------------------------------------------------------------
    # voices and timing
    def _voices(self, series: Series) -> dict[str, VoiceSpec]:
        from pipelines.voices import cast_voices

        return cast_voices(series.characters).voices  # the narrator under ""

    def _voice_for(self, voices: dict[str, VoiceSpec], speaker: str) -> VoiceSpec:
        if speaker not in voices:
            voices[speaker] = assign_voice(speaker)
        return voices[speaker]

    def _speak(self, inp: SynthInput, engine: TTSEngine, text: str, spec: VoiceSpec) -> tuple[np.ndarray, bool]:
        """Speech for a line at the episode rate, levelled; cached on disk. (samples, was_cached)."""
        cache = inp.out_dir / "voice"
        key = _hash({"v": 1, "engine": engine.name, "model": engine.model, "spec": asdict(spec), "text": text,
                     "rate": inp.audio_rate})
        path = cache / f"{key[:32]}.npy"
        if path.exists():
            return np.load(path), True
        speech: Speech = engine.synthesize(text, spec)
        samples = resample_audio(speech.samples, speech.rate, inp.audio_rate)
        if float(np.max(np.abs(samples), initial=0)) > 1e-4:
            samples = level_to(samples, inp.audio_rate, LINE_LUFS)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, samples.astype(np.float32))
        return samples.astype(np.float32), False

    def _plan(self, inp: SynthInput, ctx: RunContext, engine: TTSEngine, voices: dict[str, VoiceSpec], ep: Episode,
              shots: list[tuple[int, Scene, Shot]]) -> tuple[list[_ShotPlan], dict[str, Fraction], tuple[int, int]]:
        fps, rate = inp.fps, inp.audio_rate
        plans: list[_ShotPlan] = []
        spoken: dict[str, Fraction] = {}
        calls = chars = 0
        offset = 0
        for n, (si, scene, shot) in enumerate(shots):
            ctx.step(0.2 * n / len(shots), f"配音 {n + 1}/{len(shots)} · voices")
            timed: list[TimedLine] = []
            speech: list[np.ndarray] = []
            notes: list[str] = []
            cursor = LEAD_IN
            for line in shot.lines:
                speaker = _speaker_of(line.speaker, line.kind)
                spec = self._voice_for(voices, speaker)
                try:
                    samples, was_cached = self._speak(inp, engine, line.text, spec)
                    used = engine.name
                    if not was_cached and engine.vendor:
                        calls += 1
                        chars += len(line.text)
                except TTSError as e:
                    notes.append(f"shot {shot.id}: TTS failed on {line.text[:16]!r} ({e.message}); that line is silent")
                    silent = get_engine("silence").synthesize(line.text, spec)
                    samples = np.zeros(len(silent.samples) * rate // silent.rate, np.float32)
                    used = "silence"
                spoken[used] = spoken.get(used, Fraction(0)) + Fraction(len(samples), rate)
                start_f = math.ceil(cursor * fps)
                length_f = max(1, math.ceil(Fraction(len(samples), rate) * fps))
                timed.append(TimedLine(speaker=speaker or NARRATOR, text=line.text, kind=str(line.kind), start=start_f,
                                       end=start_f + length_f, voice=spec.voice, engine=used))
                speech.append(samples)
                cursor = Fraction(start_f + length_f) / fps + GAP
            if timed:
                frames = max(math.ceil(MIN_SHOT * fps), timed[-1].end + math.ceil(TAIL * fps))
            else:
                planned = min(max(Fraction(shot.seconds).limit_denominator(1000), MIN_SHOT), MAX_SILENT_SHOT)
                frames = math.ceil(planned * fps)
            plans.append(_ShotPlan(si, scene, shot, timed, speech, frames, offset, notes))
            offset += frames
        return plans, spoken, (calls, chars)

    # ---------------------------------------------------------------------------------------
    # sound
    def _mix(self, inp: SynthInput, s: Settings, ep: Episode,
             plans: list[_ShotPlan]) -> tuple[np.ndarray, Any, list[str], list[str]]:
        fps, rate = inp.fps, inp.audio_rate
        total = samples_for_frames(sum(p.frames for p in plans), fps, rate)
        voice_cues = []
        for p in plans:
            for tl, samples in zip(p.timed, p.speech, strict=True):
                voice_cues.append(Cue(samples_for_frames(p.offset + tl.start, fps, rate), samples, tl.text))
        voice = place(voice_cues, total)
        music_lib = SoundLibrary.open(s.synth.music)
        sfx_lib = SoundLibrary.open(s.synth.sfx)
        music = None
        used: list[str] = []
        if music_lib:
            music = np.zeros(total, np.float32)
            # one bed per scene, crossfaded at scene changes
            scenes: dict[str, list[_ShotPlan]] = {}
            for p in plans:
                scenes.setdefault(p.scene.id, []).append(p)
            xf = int(0.8 * rate)
            for sid, group in scenes.items():
                first = group[0]
                a0 = samples_for_frames(first.offset, fps, rate)
                a1 = samples_for_frames(group[-1].offset + group[-1].frames, fps, rate)
                track = music_lib.pick(sid, prefer=(first.scene.time_of_day, first.scene.place))
                if track is None:
                    continue
                used.append(track.name)
                start = max(0, a0 - xf // 2)
                end = min(total, a1 + xf // 2)
                bed = fade(loop_to_length(music_lib.load(track, rate), end - start, rate), rate,
                           0.0 if start == 0 else xf / rate, 0.0 if end == total else xf / rate)
                music[start:end] += bed
        sfx_cues: list[Cue] = []
        notes: list[str] = []
        for p in plans:
            for name in p.shot.sfx:
                if not sfx_lib:
                    continue
                hit = sfx_lib.find(name)
                if hit is None:
                    notes.append(f"shot {p.shot.id}: no sound effect named {name!r} in the library")
                    continue
                clip = level_to(sfx_lib.load(hit, rate), rate, MixSettings().sfx_lufs)
                sfx_cues.append(Cue(samples_for_frames(p.offset, fps, rate), clip, hit.name))
        sfx = place(sfx_cues, total) if sfx_cues else None
        if any(p.shot.sfx for p in plans) and not sfx_lib:
            notes.append("the screenplay names sound effects but no [synth] sfx library is configured")
        mixed, report = mix_episode(voice, rate, music=music, sfx=sfx,
                                    settings=MixSettings(target_lufs=s.loudness))
        return mixed, report, sorted(set(used)), notes

    # ---------------------------------------------------------------------------------------
    # pictures (diffusers)
    def _sheet_dir(self, inp: SynthInput) -> Path:
        return inp.shared_dir or (inp.out_dir.parent / "characters")

    def _calibration_path(self, inp: SynthInput) -> Path:
        return inp.out_dir.parent / "calibration.json"

    def _shot_prompt(self, inp: SynthInput, s: Settings, ep: Episode, shot: Shot, review: dict[str, Any]) -> str:
        from pipelines.consistency import character_prompt

        base = review.get("prompt") or shot.visual_prompt
        if not base:
            scene = next(sc for sc in ep.scenes if shot in sc.shots)
            speakers = [ln.speaker for ln in shot.lines if ln.speaker and ln.speaker != NARRATOR]
            base = "，".join(x for x in (scene.place, TIME_ZH.get(scene.time_of_day, ""), scene.summary[:60],
                                        *speakers[:2]) if x)
        chars: list[tuple[str, str]] = []
        if s.synth.consistency != "off":
            for name in shot.characters:
                ch = inp.series.character(name)
                if ch is not None:
                    chars.append((ch.name, ch.appearance))
        prompt = character_prompt(base, chars)
        if s.synth.style:
            prompt = f"{prompt}, {s.synth.style}"
        return prompt

    def _shot_seed(self, inp: SynthInput, shot: Shot, review: dict[str, Any]) -> int:
        from pipelines.diffusion import seed_for

        fixed = review.get("settings", {}).get("seed")
        if fixed is not None:
            return int(fixed) + int(review.get("seed_offset", 0))
        return (seed_for(inp.series.title, shot.id) + int(review.get("seed_offset", 0))) % (2**31)

    def _shot_options(self, s: Settings, review: dict[str, Any]) -> dict[str, Any]:
        """Generation settings for one shot: the run's, overridden by the shot's review entry."""
        own = review.get("settings", {})
        return {"steps": own.get("steps", s.steps), "guidance": own.get("guidance", s.guidance),
                "scheduler": own.get("scheduler", s.synth.scheduler) or None,
                "negative_prompt": own.get("negative_prompt", s.synth.negative_prompt)}

    def _keyframe_request_key(self, inp: SynthInput, s: Settings, ep: Episode, shot: Shot, review: dict[str, Any]) -> str:
        return _hash({"model": s.image_model, "prompt": self._shot_prompt(inp, s, ep, shot, review),
                      "seed": self._shot_seed(inp, shot, review), "opts": self._shot_options(s, review),
                      "size": s.gen_size, "fit": s.synth.fit, "consistency": s.synth.consistency,
                      "ip": s.synth.ip_adapter, "frame": [inp.width, inp.height], "chars": sorted(shot.characters)})

    def _pipeline(self, s: Settings) -> Any:
        from pipelines.diffusion import KeyframePipeline, PipelineOptions

        want = (s.image_model, s.device, s.synth.ip_adapter, s.synth.batch_size)
        if self._keyframes is None or self._keyframes[0] != want:
            opts = PipelineOptions(device=s.device, batch_size=max(1, s.synth.batch_size),
                                   ip_adapter=s.synth.ip_adapter if s.synth.consistency in ("auto", "ip-adapter") else "")
            self._keyframes = (want, KeyframePipeline(s.image_model, opts))
        return self._keyframes[1]

    def _keyframes_for(self, inp: SynthInput, s: Settings, ctx: RunContext, ep: Episode, plans: list[_ShotPlan],
                       review: dict[str, dict[str, Any]], usage: list[UsageRecord], spent: _Spend,
                       prices: PriceFn | None, quote: Quote) -> dict[str, dict[str, Any]]:
        from PIL import Image

        from pipelines.consistency import get_encoder, score_shot, sheet_prompt
        from pipelines.diffusion import Calibration, KeyframeRequest, seed_for

        kdir = inp.out_dir / "keyframes"
        kdir.mkdir(parents=True, exist_ok=True)
        out: dict[str, dict[str, Any]] = {}
        todo: list[tuple[_ShotPlan, str, KeyframeRequest]] = []
        pipe = None
        for p in plans:
            rv = review.get(p.shot.id, {})
            rkey = self._keyframe_request_key(inp, s, ep, p.shot, rv)
            png, rec_path = kdir / f"{p.shot.id}.png", kdir / f"{p.shot.id}.json"
            if png.exists() and rec_path.exists():
                try:
                    stored = json.loads(rec_path.read_text(encoding="utf-8"))
                except ValueError:
                    stored = {}
                if stored.get("request_key") == rkey:
                    out[p.shot.id] = {"png": png, "record": rec_path, "prompt": stored["record"]["prompt"],
                                      "seed": stored["record"]["seed"], "hash": _file_hash(png),
                                      "consistency": stored.get("consistency")}
                    continue
            todo.append((p, rkey, KeyframeRequest(prompt=self._shot_prompt(inp, s, ep, p.shot, rv),
                                                  seed=self._shot_seed(inp, p.shot, rv), tag=p.shot.id,
                                                  **self._shot_options(s, rv))))
        # character sheets (series-wide, reused by every episode)
        sheets: dict[str, Path] = {}
        present = {c for p in plans for c in p.shot.characters}
        mode = s.synth.consistency
        if mode not in ("off",):
            sheet_dir = self._sheet_dir(inp)
            sheet_dir.mkdir(parents=True, exist_ok=True)
            missing = []
            for ch in inp.series.characters:
                if ch.name not in present or not ch.appearance:
                    continue
                path = sheet_dir / f"{_safe_name(ch.name)}.png"
                if path.exists():
                    sheets[ch.name] = path
                elif mode != "prompt":
                    missing.append((ch, path))
            if missing:
                pipe = self._pipeline(s)
                reqs = [KeyframeRequest(prompt=sheet_prompt(ch.name, ch.appearance, s.synth.style),
                                        seed=seed_for(inp.series.title, "sheet", ch.name),
                                        negative_prompt=s.synth.negative_prompt, steps=s.steps, guidance=s.guidance,
                                        scheduler=s.synth.scheduler or None, tag=f"sheet:{ch.name}")
                        for ch, _ in missing]
                ctx.step(0.2, f"角色设定图 · {len(reqs)} character sheets")
                results = self._generate(pipe, reqs, s, ctx, usage, spent, prices, ep)
                for (ch, path), (img, rec) in zip(missing, results, strict=True):
                    Image.fromarray(img).save(path, pnginfo=_png_label(make_label(inp.producer, f"sheet|{ch.name}|{rec.seed}").to_json()))
                    path.with_suffix(".json").write_text(json.dumps(rec.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
                    sheets[ch.name] = path
        if todo:
            pipe = pipe or self._pipeline(s)
            pipe.load()
            size = pipe.generation_size((inp.width, inp.height), s.synth.fit, s.gen_size)
            use_ip = pipe.ip_adapter_loaded and mode in ("auto", "ip-adapter")
            if mode == "ip-adapter" and not use_ip:
                raise InputError("consistency = ip-adapter but no IP-Adapter is configured",
                                 hint="set [synth] ip_adapter to a local IP-Adapter folder, or consistency = auto")
            reqs = []
            for p, _, req in todo:
                ref = next((sheets[c] for c in p.shot.characters if c in sheets), None)
                kw: dict[str, Any] = {"width": size[0], "height": size[1]}
                if ref is not None and use_ip:
                    kw["ip_adapter_image"] = str(ref)
                elif ref is not None and mode == "img2img":
                    kw["init_image"] = str(ref)
                from dataclasses import replace as _replace

                reqs.append(_replace(req, **kw))
            ctx.step(0.25, f"关键帧 · {len(reqs)} keyframes")
            results = self._generate(pipe, reqs, s, ctx, usage, spent, prices, ep)
            calib = Calibration.load(self._calibration_path(inp))
            for (p, rkey, _), (img, rec) in zip(todo, results, strict=True):
                png, rec_path = kdir / f"{p.shot.id}.png", kdir / f"{p.shot.id}.json"
                label = make_label(inp.producer, f"{inp.series.title}|ep{ep.number}|{p.shot.id}|{rec.seed}")
                Image.fromarray(img).save(png, pnginfo=_png_label(label.to_json()))
                rec_path.write_text(json.dumps({"request_key": rkey, "record": rec.to_json()}, ensure_ascii=False,
                                               indent=2), encoding="utf-8")
                calib.update(Path(s.image_model).name, rec.device, rec.seconds, rec.steps, rec.width * rec.height)
                out[p.shot.id] = {"png": png, "record": rec_path, "prompt": rec.prompt, "seed": rec.seed,
                                  "hash": _file_hash(png), "consistency": None}
            calib.save(self._calibration_path(inp))
        # consistency scores (cheap; recomputed when missing)
        if sheets and mode != "off":
            encoder = get_encoder(s.synth.image_encoder or None, s.device)
            sheet_imgs = {n: np.asarray(Image.open(p).convert("RGB")) for n, p in sheets.items()}
            for p in plans:
                item = out.get(p.shot.id)
                chars = {c: sheet_imgs[c] for c in p.shot.characters if c in sheet_imgs}
                if item is None or not chars:
                    continue
                score = score_shot(encoder, np.asarray(Image.open(item["png"]).convert("RGB")), chars)
                if score is not None:
                    item["consistency"] = {"score": score.score, "method": score.method, "per": score.per_character}
                    stored = json.loads(item["record"].read_text(encoding="utf-8"))
                    stored["consistency"] = item["consistency"]
                    item["record"].write_text(json.dumps(stored, ensure_ascii=False, indent=2), encoding="utf-8")
        if s.video_model:
            self._motion_clips(inp, s, ctx, ep, plans, out, usage, spent)
        return out

    def _generate(self, pipe: Any, reqs: list[Any], s: Settings, ctx: RunContext, usage: list[UsageRecord],
                  spent: _Spend, prices: PriceFn | None, ep: Episode) -> list[tuple[np.ndarray, Any]]:
        """Generate in batches, checking the caps before each batch and recording usage after it."""
        results: list[tuple[np.ndarray, Any]] = []
        bs = max(1, s.synth.batch_size)
        for i in range(0, len(reqs), bs):
            ctx.check_cancelled()
            chunk = reqs[i:i + bs]
            if s.gpu_cap is not None and spent.gpu_seconds >= s.gpu_cap:
                raise BudgetExceeded(f"the GPU-seconds cap {s.gpu_cap} was reached after {spent.gpu_seconds}s; "
                                     f"{len(reqs) - i} images were not generated",
                                     hint="raise [synth] gpu_seconds_cap; finished images are kept and reused")
            if s.budget_fen is not None and spent.cost_fen >= s.budget_fen:
                raise BudgetExceeded(f"the budget cap ¥{Decimal(s.budget_fen) / 100:.2f} was reached",
                                     hint="raise [synth] budget_cny; finished images are kept and reused")
            t0 = time.perf_counter()
            batch = pipe.generate(chunk)
            secs = seconds_since(t0, time.perf_counter())
            results.extend(batch)
            rec = batch[0][1]
            device = rec.device
            unit = "gpu_second" if device.startswith("cuda") else "cpu_second"
            spent.gpu_seconds += secs
            model = Path(s.image_model).name
            if prices is not None:
                for u, q in ((unit, secs), ("image", Decimal(len(batch)))):
                    price = prices(model, u, date.today())
                    if price is not None:
                        spent.cost_fen += yuan_to_fen(price * q)
            usage.append(UsageRecord(stage=self.name, engine="diffusers", unit=unit, quantity=secs, seconds=secs,
                                     model=model, device=device, licence="see the model card",
                                     detail={"episode": ep.number, "images": len(batch), "steps": rec.steps,
                                             "size": [rec.width, rec.height], "pipeline": rec.pipeline,
                                             "seeds": [r.seed for _, r in batch], "tags": [r.tag for _, r in batch]}))
            usage.append(UsageRecord(stage=self.name, engine="diffusers", unit="image", quantity=Decimal(len(batch)),
                                     model=model, device=device, detail={"episode": ep.number}))
        return results

    def _motion_clips(self, inp: SynthInput, s: Settings, ctx: RunContext, ep: Episode, plans: list[_ShotPlan],
                      pics: dict[str, dict[str, Any]], usage: list[UsageRecord], spent: _Spend) -> None:
        from PIL import Image

        from pipelines.diffusion import seed_for
        from pipelines.motion import VideoPipeline

        if self._video is None or self._video[0] != (s.video_model, s.device):
            self._video = ((s.video_model, s.device), VideoPipeline(s.video_model, device=s.device))
        vp = self._video[1]
        for n, p in enumerate(plans):
            item = pics.get(p.shot.id)
            if item is None:
                continue
            ctx.step(0.45 + 0.15 * n / len(plans), f"图生视频 {n + 1}/{len(plans)} · image to video")
            mp4 = inp.out_dir / "keyframes" / f"{p.shot.id}.motion.mp4"
            key = _hash({"kf": item["hash"], "model": s.video_model, "frames": s.synth.video_frames,
                         "fps": s.synth.video_fps, "steps": s.steps})
            meta = mp4.with_suffix(".json")
            if mp4.exists() and meta.exists() and json.loads(meta.read_text(encoding="utf-8")).get("key") == key:
                item["motion"] = {"path": mp4, "fps": s.synth.video_fps, "hash": key,
                                  "pipeline": json.loads(meta.read_text(encoding="utf-8"))["record"]["pipeline"]}
                continue
            if s.gpu_cap is not None and spent.gpu_seconds >= s.gpu_cap:
                raise BudgetExceeded(f"the GPU-seconds cap {s.gpu_cap} was reached before image-to-video of {p.shot.id}",
                                     hint="raise [synth] gpu_seconds_cap; finished clips are kept and reused")
            img = np.asarray(Image.open(item["png"]).convert("RGB"))
            frames, rec = vp.generate(img, seed=seed_for(inp.series.title, "video", p.shot.id),
                                      frames=s.synth.video_frames, fps=s.synth.video_fps, steps=s.steps)
            h, w = frames[0].shape[:2]
            w2, h2 = w - w % 2, h - h % 2
            with VideoWriter(mp4, w2, h2, Fraction(s.synth.video_fps), crf=12, preset="veryfast") as writer:
                for f in frames:
                    writer.write(np.ascontiguousarray(f[:h2, :w2]))
            meta.write_text(json.dumps({"key": key, "record": asdict(rec)}, ensure_ascii=False, indent=2), encoding="utf-8")
            secs = Decimal(str(rec.seconds))
            spent.gpu_seconds += secs
            unit = "gpu_second" if rec.device.startswith("cuda") else "cpu_second"
            usage.append(UsageRecord(stage=self.name, engine="diffusers-video", unit=unit, quantity=secs, seconds=secs,
                                     model=Path(s.video_model).name, device=rec.device, licence="see the model card",
                                     detail={"episode": ep.number, "shot": p.shot.id, "frames": rec.frames,
                                             "seed": rec.seed, "pipeline": rec.pipeline}))
            item["motion"] = {"path": mp4, "fps": s.synth.video_fps, "hash": key, "pipeline": rec.pipeline}

    # ---------------------------------------------------------------------------------------
    # shot clips
    def _key(self, inp: SynthInput, s: Settings, engine: TTSEngine, ep: Episode, plan: _ShotPlan,
             pic: dict[str, Any]) -> str:
        """Hash of everything that shapes the shot's picture (the sound is keyed separately)."""
        payload = {
            "v": RENDER_VERSION, "shot": plan.shot.model_dump(mode="json"), "header": _header(ep, plan.si, plan.scene),
            "place": plan.scene.place, "tod": plan.scene.time_of_day, "size": [inp.width, inp.height],
            "fps": str(inp.fps), "crf": inp.crf, "preset": inp.preset, "rate": inp.audio_rate, "tts": engine.name,
            "timed": [t.model_dump() for t in plan.timed], "frames": plan.frames,
            "label": [inp.label.text, inp.label.position, inp.label.opacity, inp.label.enabled], "producer": inp.producer,
            "engine": s.engine, "keyframe": pic.get("hash"), "motion": (pic.get("motion") or {}).get("hash"),
            "fit": s.synth.fit, "background": str(self._background_file(s, plan.scene) or ""),
        }
        return _hash(payload)

    def _resound(self, inp: SynthInput, render: ShotRender, audio: np.ndarray, key: str) -> ShotRender:
        clip, wav = inp.out_dir / render.clip, inp.out_dir / render.audio
        write_wav(wav, audio, inp.audio_rate)
        tmp = clip.with_name(f".{clip.stem}.resound.mp4")
        meta = {k: v for k, v in probe(clip).metadata.items() if k in {AIGC_KEY, "comment", "title"}}
        label = read_label(meta)
        if label is not None:
            write_wav_label(wav, label)  # the voice file carries the implicit label too
        concat([clip], tmp, audio_from=[wav], audio_rate=inp.audio_rate, metadata=meta)
        tmp.replace(clip)
        return render.model_copy(update={"key": key})

    def _cached(self, meta_path: Path, key: str, out_dir: Path, field: str = "key") -> ShotRender | None:
        if not meta_path.exists():
            return None
        try:
            render = ShotRender.model_validate_json(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            return None
        if not key or getattr(render, field) != key:
            return None
        if not all((out_dir / p).exists() for p in (render.clip, render.audio, render.keyframe)):
            return None
        return render

    def _background_file(self, s: Settings, scene: Scene) -> Path | None:
        folder = s.synth.backgrounds
        if not folder or not scene.place:
            return None
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise InputError(f"[synth] backgrounds {folder!r} is not a folder")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        exact = [p for p in files if p.stem == scene.place]
        near = [p for p in files if scene.place in p.stem or (p.stem and p.stem in scene.place)]
        return (exact or near or [None])[0]

    def _render_shot(self, inp: SynthInput, s: Settings, ctx: RunContext, ep: Episode, plan: _ShotPlan, key: str,
                     shot_dir: Path, audio: np.ndarray, pic: dict[str, Any]) -> ShotRender:
        from PIL import Image

        from pipelines.diffusion import fit_to_frame

        shot, scene = plan.shot, plan.scene
        fps, rate = inp.fps, inp.audio_rate
        frame = (inp.width, inp.height)
        notes = list(plan.notes)
        header = _header(ep, plan.si, scene)
        label = make_label(inp.producer, f"{inp.series.title}|ep{ep.number}|{shot.id}|{key}")
        clip, wav, png = shot_dir / f"{shot.id}.mp4", shot_dir / f"{shot.id}.wav", shot_dir / f"{shot.id}.png"
        diffusers = s.engine == "diffusers" and "png" in pic
        # the plate
        if diffusers:
            raw = np.asarray(Image.open(pic["png"]).convert("RGB"))
            background, fit_used = fit_to_frame(raw, frame, s.synth.fit)
            if fit_used.startswith("outpaint"):
                notes.append(f"shot {shot.id}: keyframe extended to the frame's aspect by a classical fill ({fit_used})")
        else:
            bg_file = self._background_file(s, scene)
            if bg_file is not None:
                background, _ = fit_to_frame(np.asarray(Image.open(bg_file).convert("RGB")), frame, "crop")
            else:
                background = plate(inp.width, inp.height, scene.place, scene.time_of_day)
        camera = str(shot.camera or "static")
        move = CameraMove.preset(camera, seed=int(key[:8], 16))
        motion_clip = pic.get("motion")
        # one card spec per line (or one for a silent shot)
        specs: list[tuple[int, CardSpec]] = []
        base = dict(width=inp.width, height=inp.height, header=header, place=scene.place,
                    time_of_day=scene.time_of_day, label=inp.label, show_header=not diffusers,
                    show_character=not diffusers)
        if not plan.timed:
            specs.append((0, CardSpec(speaker="", subtitle="", kind="narration", **base)))  # type: ignore[arg-type]
        for i, tl in enumerate(plan.timed):
            specs.append((0 if i == 0 else tl.start,
                          CardSpec(speaker="" if tl.speaker == NARRATOR else tl.speaker, subtitle=tl.text,
                                   kind=tl.kind, **base)))  # type: ignore[arg-type]
        layers = [(first, render_layers(spec, background)) for first, spec in specs]
        bounds = [c[0] for c in layers[1:]] + [plan.frames]
        static = move.is_static and motion_clip is None
        motion_name = "static"
        # keyframes where the rough cut's transitions will end, so its render copies all but those
        from core.timeline import EPISODE_FADE, SCENE_DISSOLVE, cut_keyframes

        first_ep = plan.si == 1 and shot is scene.shots[0]  # si counts scenes from 1
        last_ep = plan.si == len(ep.scenes) and shot is scene.shots[-1]
        head = EPISODE_FADE if first_ep else SCENE_DISSOLVE if shot is scene.shots[0] else 0
        tail = EPISODE_FADE if last_ep else SCENE_DISSOLVE if shot is scene.shots[-1] else 0
        with VideoWriter(clip, inp.width, inp.height, fps, crf=inp.crf, preset=inp.preset, audio_rate=rate,
                         metadata=label_metadata(label),
                         keyframes=cut_keyframes(plan.frames, head=head, tail=tail)) as writer:
            writer.write_audio(audio)
            if static:
                for (first, lay), stop in zip(layers, bounds, strict=True):
                    ctx.check_cancelled()
                    from pipelines.cards import composite

                    prepared = writer.prepare(composite(lay))
                    for _ in range(first, stop):
                        writer.write_frame(prepared)
            else:
                source = self._motion_frames(inp, s, motion_clip, background, move, plan.frames, frame, fps) \
                    if motion_clip is not None else None
                if source is None:
                    plate_img = prepare_plate(background, frame, move, channels=4)
                    motion_name = f"camera:{camera}"
                else:
                    motion_name = f"i2v:{motion_clip['pipeline']}"
                overlays = [(first, Overlay.from_rgba(lay.overlay), lay) for first, lay in layers]
                for (first, overlay, lay), stop in zip(overlays, bounds, strict=True):
                    ctx.check_cancelled()
                    sprites = (Sprite(lay.sprite, *lay.sprite_xy),) if lay.sprite is not None else ()
                    if source is not None:
                        frames_iter = (np.ascontiguousarray(source[i]) for i in range(first, stop))
                    else:
                        # the move spans the whole shot: render frames first..stop of it
                        frames_iter = _slice_move(plate_img, frame, move, plan.frames, first, stop, fps, sprites)
                    for img in frames_iter:
                        overlay.apply(img)
                        # through the writer's own RGB path, so moving and still shots share its colour conversion
                        writer.write(_rgb(img))
        write_wav(wav, audio, rate)
        write_wav_label(wav, label)  # the voice file carries the implicit label too
        key_img = np.asarray(Image.open(pic["png"]).convert("RGB")) if diffusers else None
        from pipelines.cards import composite

        still = composite(layers[0][1]) if key_img is None else key_img
        Image.fromarray(still).save(png, pnginfo=_png_label(label.to_json()))
        rel = inp.out_dir
        cons = pic.get("consistency") or {}
        return ShotRender(id=shot.id, scene_id=scene.id, clip=clip.relative_to(rel).as_posix(),
                          audio=wav.relative_to(rel).as_posix(), keyframe=png.relative_to(rel).as_posix(),
                          frames=plan.frames, lines=plan.timed, key=key, notes=notes,
                          picture="diffusers" if diffusers else "animatic", motion=motion_name,
                          prompt=pic.get("prompt", ""), seed=pic.get("seed"),
                          keyframe_record=Path(pic["record"]).relative_to(rel).as_posix() if "record" in pic else "",
                          consistency=cons.get("score"), consistency_method=cons.get("method", ""))

    def _motion_frames(self, inp: SynthInput, s: Settings, motion: dict[str, Any], background: np.ndarray,
                       move: CameraMove, n: int, frame: tuple[int, int], fps: Fraction) -> list[np.ndarray]:
        from core.media import iter_frames
        from pipelines.diffusion import fit_to_frame
        from pipelines.motion import retime

        src = [fit_to_frame(f.image, frame, s.synth.fit)[0] for f in iter_frames(motion["path"])]
        return retime(src, Fraction(motion["fps"]), fps, n)

    def _cover(self, inp: SynthInput, ep: Episode, plans: list[_ShotPlan], pics: dict[str, dict[str, Any]]) -> Path | None:
        from PIL import Image

        from pipelines.diffusion import fit_to_frame

        first = next((p for p in plans if p.shot.id in pics), None)
        if first is not None:
            img, _ = fit_to_frame(np.asarray(Image.open(pics[first.shot.id]["png"]).convert("RGB")),
                                  (inp.width, inp.height), "auto")
        else:
            p = plans[0]
            img = plate(inp.width, inp.height, p.scene.place, p.scene.time_of_day)
        cover = render_cover(img, inp.series.title, f"第{ep.number}集 {ep.title}".strip(), inp.label)
        path = inp.out_dir / "cover.png"
        label = make_label(inp.producer, f"{inp.series.title}|ep{ep.number}|cover")
        Image.fromarray(cover).save(path, pnginfo=_png_label(label.to_json()))
        return path


def _rgb(img: np.ndarray) -> np.ndarray:
    """RGB pixels from an RGB or RGBX frame."""
    if img.shape[2] == 3:
        return img
    import cv2

    return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)


def _slice_move(plate_img: np.ndarray, frame: tuple[int, int], move: CameraMove, n: int, first: int, stop: int,
                fps: Fraction, sprites: tuple[Sprite, ...]) -> Any:
    """Frames ``first..stop`` of a move that spans ``n`` frames (the move does not restart per line)."""
    from pipelines.motion import _blend_sprite, _cv2

    cv2 = _cv2()
    fw, fh = frame
    ph, pw = plate_img.shape[:2]
    out = np.empty((fh, fw, plate_img.shape[2]), np.uint8)
    for i in range(first, stop):
        m = move.matrix(i, n, (pw, ph), frame, fps)
        cv2.warpAffine(plate_img, m, (fw, fh), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        for sp in sprites:
            _blend_sprite(out, sp, move, i, n, frame, fps)
        yield out


def _device_name(device: str) -> str:
    try:
        from core.device import resolve_device

        return str(resolve_device(device))
    except ReelForgeError:
        return device


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "character"


def _png_label(label_json: str) -> object:
    """PNG text chunks carrying the implicit label (XMP with the TC260 namespace, and a plain AIGC key)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("AIGC", label_json)
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/">'
        f"<TC260:AIGC>{_xml_escape(label_json)}</TC260:AIGC>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    info.add_itxt("XML:com.adobe.xmp", xmp)
    return info


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
