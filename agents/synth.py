"""Synth agent: turn an episode of the screenplay into shot clips (picture + voice).

The foundation engine is the *animatic*: one styled card per line (background from the place,
speaker card, Chinese subtitle in the safe area, the visible "AI生成" label) and a voice track
from an offline Chinese TTS. The spoken duration drives each shot's length, so picture and
dialogue line up to the frame.

Each shot is cached under ``synth/epNN/shots/<id>.*`` with a key of everything that shaped it,
so an interrupted run resumes where it stopped and an edited line re-renders only its shot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.base import Agent, AgentResult, RunContext
from core.aigc import label_metadata, make_label
from core.errors import InputError
from core.fonts import find_cjk_font
from core.media import VideoWriter, resample_audio, samples_for_frames, write_wav
from core.screenplay import Episode, LineKind, Scene, Series, Shot
from core.usage import UsageRecord, seconds_since
from pipelines.cards import CardSpec, LabelStyle, render_card
from pipelines.tts import (
    Speech,
    TTSEngine,
    TTSError,
    VoiceSpec,
    assign_voice,
    get_engine,
    normalize_peak,
)

log = logging.getLogger(__name__)

RENDER_VERSION = 1  # bump when the look of a card or the timing rules change
NARRATOR = "旁白"

# Timing rules (seconds): a breath before the first line, a pause between lines, a tail after.
LEAD_IN = Fraction(1, 4)
GAP = Fraction(1, 5)
TAIL = Fraction(7, 20)
MIN_SHOT = Fraction(3, 2)
MAX_SILENT_SHOT = Fraction(4)

TIME_ZH = {"day": "日", "night": "夜", "dawn": "晨", "dusk": "昏", "unspecified": ""}
INT_EXT_ZH = {"INT": "内", "EXT": "外", "INT/EXT": "内/外"}


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

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shots)

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


class SynthAgent(Agent[SynthInput, EpisodeRender]):
    name = "synth"
    description = "screenplay episode -> shot clips with voice, subtitles and the AI label (animatic engine)"

    def run(self, inp: SynthInput, ctx: RunContext) -> AgentResult[EpisodeRender]:
        start = time.perf_counter()
        if inp.width % 2 or inp.height % 2:
            raise InputError(f"render size {inp.width}x{inp.height} must be even", hint="e.g. 1080x1920 or 720x1280")
        ep = inp.series.episode(inp.episode)
        shots = [(si, scene, shot) for si, scene in enumerate(ep.scenes, 1) for shot in scene.shots]
        if not shots:
            raise InputError(f"episode {inp.episode} has no shots", hint="edit screenplay.json or re-run the script stage")
        engine = get_engine(inp.tts)
        if engine.name == "silence":
            ctx.warn("no offline Chinese voice installed: the episode has a silent voice track "
                     "(apt-get install espeak-ng, or pip install espeakng-loader)")
        font = find_cjk_font()
        shot_dir = inp.out_dir / "shots"
        shot_dir.mkdir(parents=True, exist_ok=True)
        voices = self._voices(inp.series)
        renders: list[ShotRender] = []
        files: list[Path] = []
        speech_seconds: dict[str, Fraction] = {}
        reused = 0
        for n, (si, scene, shot) in enumerate(shots):
            ctx.step(n / len(shots), f"合成镜头 {n + 1}/{len(shots)} · shot {shot.id}")
            key = self._key(inp, engine, voices, ep, si, scene, shot)
            meta_path = shot_dir / f"{shot.id}.json"
            cached = self._cached(meta_path, key, inp.out_dir)
            if cached is not None:
                renders.append(cached)
                reused += 1
                continue
            render, spoken = self._render_shot(inp, ctx, engine, voices, ep, si, scene, shot, key, shot_dir)
            for eng, secs in spoken.items():
                speech_seconds[eng] = speech_seconds.get(eng, Fraction(0)) + secs
            meta_path.write_text(json.dumps(render.model_dump(mode="json"), ensure_ascii=False, indent=2), encoding="utf-8")
            renders.append(render)
        ctx.step(1.0, "镜头合成完成 · shots done")
        result = EpisodeRender(
            episode=ep.number, title=ep.title, engine="animatic", tts_engine=engine.name,
            fps=str(inp.fps), width=inp.width, height=inp.height, audio_rate=inp.audio_rate, shots=renders,
        )
        render_path = result.save(inp.out_dir / "render.json")
        files.append(render_path)
        notes = sorted({note for r in renders for note in r.notes})
        for note in notes:
            ctx.warn(note)
        elapsed = seconds_since(start, time.perf_counter())
        usage = [UsageRecord(stage=self.name, engine="animatic", unit="cpu_second", quantity=elapsed, seconds=elapsed,
                             model="animatic-cards", device="cpu", licence="Apache-2.0 (ReelForge)",
                             detail={"episode": ep.number, "shots": len(renders), "reused": reused})]
        for eng, secs in speech_seconds.items():
            usage.append(UsageRecord(stage=self.name, engine=eng, unit="audio_second",
                                     quantity=Decimal(secs.numerator) / Decimal(secs.denominator),
                                     model="cmn", device="cpu", licence=type(engine).licence if eng == engine.name else "n/a",
                                     detail={"episode": ep.number}))
        usage.append(UsageRecord(stage=self.name, engine="font", unit="use", quantity=Decimal(1), model=font.name,
                                 licence=font.licence, detail={"path": str(font.path), "source": font.source}))
        ctx.record(usage)
        log.info("synth: episode %d, %d shots (%d reused), %d frames", ep.number, len(renders), reused, result.total_frames)
        return AgentResult(output=result, engine=f"animatic+{engine.name}", files=files, usage=usage, notes=notes)

    # ------------------------------------------------------------------------------------
    def _voices(self, series: Series) -> dict[str, VoiceSpec]:
        voices: dict[str, VoiceSpec] = {"": VoiceSpec(voice="cmn", rate_wpm=160, pitch=45)}  # narrator
        for ch in series.characters:
            spec = VoiceSpec(voice=ch.voice, rate_wpm=170, pitch=50) if ch.voice else assign_voice(ch.name)
            voices[ch.name] = spec
            for alias in ch.aliases:
                voices.setdefault(alias, spec)
        return voices

    def _voice_for(self, voices: dict[str, VoiceSpec], speaker: str) -> VoiceSpec:
        if speaker not in voices:
            voices[speaker] = assign_voice(speaker)
        return voices[speaker]

    def _key(self, inp: SynthInput, engine: TTSEngine, voices: dict[str, VoiceSpec], ep: Episode, si: int,
             scene: Scene, shot: Shot) -> str:
        payload = {
            "v": RENDER_VERSION, "shot": shot.model_dump(mode="json"), "header": _header(ep, si, scene),
            "place": scene.place, "tod": scene.time_of_day, "size": [inp.width, inp.height], "fps": str(inp.fps),
            "crf": inp.crf, "preset": inp.preset, "rate": inp.audio_rate, "tts": engine.name,
            "voices": {ln.speaker: str(self._voice_for(voices, _speaker_of(ln.speaker, ln.kind))) for ln in shot.lines},
            "label": [inp.label.text, inp.label.position, inp.label.opacity, inp.label.enabled], "producer": inp.producer,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _cached(self, meta_path: Path, key: str, out_dir: Path) -> ShotRender | None:
        if not meta_path.exists():
            return None
        try:
            render = ShotRender.model_validate_json(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            return None
        if render.key != key:
            return None
        if not all((out_dir / p).exists() for p in (render.clip, render.audio, render.keyframe)):
            return None
        return render

    def _render_shot(self, inp: SynthInput, ctx: RunContext, engine: TTSEngine, voices: dict[str, VoiceSpec],
                     ep: Episode, si: int, scene: Scene, shot: Shot, key: str,
                     shot_dir: Path) -> tuple[ShotRender, dict[str, Fraction]]:
        fps, rate = inp.fps, inp.audio_rate
        notes: list[str] = []
        spoken: dict[str, Fraction] = {}
        timed: list[tuple[TimedLine, np.ndarray]] = []
        cursor = LEAD_IN
        for line in shot.lines:
            speaker = _speaker_of(line.speaker, line.kind)
            spec = self._voice_for(voices, speaker)
            try:
                speech: Speech = engine.synthesize(line.text, spec)
                used = engine.name
            except TTSError as e:
                notes.append(f"shot {shot.id}: TTS failed on {line.text[:16]!r} ({e}); that line is silent")
                speech = get_engine("silence").synthesize(line.text, spec)
                used = "silence"
            spoken[used] = spoken.get(used, Fraction(0)) + speech.seconds
            samples = normalize_peak(resample_audio(speech.samples, speech.rate, rate), -3.0)
            start_f = math.ceil(cursor * fps)
            length_f = max(1, math.ceil(Fraction(len(samples), rate) * fps))
            timed.append((TimedLine(speaker=speaker or NARRATOR, text=line.text, kind=str(line.kind), start=start_f,
                                    end=start_f + length_f, voice=spec.voice, engine=used), samples))
            cursor = Fraction(start_f + length_f) / fps + GAP
        if timed:
            frames = max(math.ceil(MIN_SHOT * fps), timed[-1][0].end + math.ceil(TAIL * fps))
        else:
            planned = min(max(Fraction(shot.seconds).limit_denominator(1000), MIN_SHOT), MAX_SILENT_SHOT)
            frames = math.ceil(planned * fps)
        audio = np.zeros(samples_for_frames(frames, fps, rate), np.float32)
        for tl, samples in timed:
            at = samples_for_frames(tl.start, fps, rate)
            end = min(len(audio), at + len(samples))
            audio[at:end] += samples[: end - at]
        header = _header(ep, si, scene)
        label = make_label(inp.producer, f"{inp.series.title}|ep{ep.number}|{shot.id}|{key}")
        clip = shot_dir / f"{shot.id}.mp4"
        wav = shot_dir / f"{shot.id}.wav"
        png = shot_dir / f"{shot.id}.png"
        cards: list[tuple[int, np.ndarray]] = []
        if not timed:  # an establishing shot: the place card, no subtitle
            cards.append((0, render_card(CardSpec(inp.width, inp.height, header, scene.place, scene.time_of_day,
                                                  "", "", "narration", inp.label))))
        for i, (tl, _) in enumerate(timed):
            first = 0 if i == 0 else tl.start
            cards.append((first, render_card(CardSpec(inp.width, inp.height, header, scene.place, scene.time_of_day,
                                                      "" if tl.speaker == NARRATOR else tl.speaker, tl.text, tl.kind,
                                                      inp.label))))
        with VideoWriter(clip, inp.width, inp.height, fps, crf=inp.crf, preset=inp.preset, audio_rate=rate,
                         metadata=label_metadata(label)) as writer:
            writer.write_audio(audio)
            bounds = [c[0] for c in cards[1:]] + [frames]
            for (first, image), stop in zip(cards, bounds, strict=True):
                ctx.check_cancelled()
                prepared = writer.prepare(image)
                for _ in range(first, stop):
                    writer.write_frame(prepared)
        write_wav(wav, audio, rate)
        from PIL import Image

        Image.fromarray(cards[0][1]).save(png, pnginfo=_png_label(label.to_json()))
        rel = inp.out_dir
        render = ShotRender(id=shot.id, scene_id=scene.id, clip=clip.relative_to(rel).as_posix(),
                            audio=wav.relative_to(rel).as_posix(), keyframe=png.relative_to(rel).as_posix(),
                            frames=frames, lines=[t for t, _ in timed], key=key, notes=notes)
        return render, spoken


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
