"""Sound: a voice per character, lines timed to the frame, and the episode's mix.

A voice per character (one voice across episodes); lines laid out with a breath before, pauses
between and a tail after; the spoken duration drives each shot's length so picture and dialogue
line up to the frame. The episode's voice, music bed (ducked under dialogue) and sound effects
are mixed once and normalised to the loudness target (BS.1770 / EBU R128), then cut into each
shot's exact samples by the compositor.

Any :class:`VoiceEngine` speaks the lines: the local TTS engines of :mod:`pipelines.tts`
satisfy it as they are, and a remote provider implements the same four attributes and one
method. Speech is cached on disk per (engine, model, voice, text, rate), so a re-run pays for
no line twice.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

import numpy as np

from agents.synth.job import EpisodeJob, ShotPlan, content_hash, speaker_of
from agents.synth.schema import NARRATOR, TimedLine
from core.files import atomic_write_bytes
from core.media import resample_audio, samples_for_frames
from core.screenplay import Line, Scene, Series, Shot
from core.usage import UsageRecord
from pipelines.audio import (
    Cue,
    MixReport,
    MixSettings,
    SoundLibrary,
    fade,
    level_to,
    loop_to_length,
    mix_episode,
    place,
)
from pipelines.tts import SilenceEngine, Speech, TTSError, VoiceSpec, assign_voice

# Timing rules (seconds): a breath before the first line, a pause between lines, a tail after.
LEAD_IN = Fraction(1, 4)
GAP = Fraction(1, 5)
TAIL = Fraction(7, 20)
MIN_SHOT = Fraction(3, 2)
MAX_SILENT_SHOT = Fraction(4)
LINE_LUFS = -18.0  # every line is levelled to this before the episode mix (even voices)


class VoiceEngine(Protocol):
    """What speaks a line: a local TTS engine (:class:`pipelines.tts.TTSEngine`) or a remote provider."""

    @property
    def name(self) -> str: ...  # recorded on every line and usage record

    @property
    def model(self) -> str: ...  # the voice model, for the usage records ("" when the engine has one)

    @property
    def vendor(self) -> str: ...  # who is paid for it; "" for local engines

    @property
    def licence(self) -> str: ...  # of the voice model and data, or the service's terms

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        """Speak ``text`` with ``spec``; raise :class:`pipelines.tts.TTSError` on failure."""


@dataclass(slots=True)
class Voicing:
    """What the voices of an episode took: seconds spoken per engine, paid calls and characters."""

    spoken: dict[str, Fraction] = field(default_factory=dict)
    licences: dict[str, str] = field(default_factory=dict)
    calls: int = 0  # requests to a paid engine (cached lines are not requested again)
    characters: int = 0
    made: int = 0  # lines spoken now (not found in the cache), by any engine


def cast_voices(series: Series) -> dict[str, VoiceSpec]:
    """A voice per character and alias ("" is the narrator); the same across every episode, and
    distinct within the series (chosen from each character's gender/age hint: pipelines.voices)."""
    from pipelines.voices import cast_voices as cast

    return cast(series.characters).voices


def speak(job: EpisodeJob, engine: VoiceEngine, text: str, spec: VoiceSpec, *,
          make: bool = True) -> tuple[np.ndarray, bool]:
    """Speech for a line at the episode rate, levelled; cached on disk. (samples, was_cached).

    ``make=False`` only reads the cache: a line not there raises :class:`TTSError` (its voice task
    already tried it and failed, so it is not sent again)."""
    cache = job.out_dir / "voice"
    key = content_hash({"v": 1, "engine": engine.name, "model": engine.model, "spec": asdict(spec), "text": text,
                        "rate": job.rate})
    path = cache / f"{key[:32]}.npy"
    if path.exists():
        return np.load(path), True
    if not make:
        raise TTSError("its voice task did not speak it")
    speech = engine.synthesize(text, spec)
    samples = resample_audio(speech.samples, speech.rate, job.rate)
    if float(np.max(np.abs(samples), initial=0)) > 1e-4:
        samples = level_to(samples, job.rate, LINE_LUFS)
    buf = io.BytesIO()
    np.save(buf, samples.astype(np.float32))
    atomic_write_bytes(path, buf.getvalue())  # a worker killed mid-write leaves no half file in the cache
    return samples.astype(np.float32), False


def speak_line(job: EpisodeJob, engine: VoiceEngine, voices: dict[str, VoiceSpec], line: Line, voicing: Voicing,
               notes: list[str], shot_id: str, *, make: bool = True) -> tuple[np.ndarray, str, str, VoiceSpec]:
    """One line spoken (or silent, with a note, when the engine fails): (samples, engine used, speaker, voice)."""
    speaker = speaker_of(line.speaker, line.kind)
    if speaker not in voices:
        voices[speaker] = assign_voice(speaker)
    spec = voices[speaker]
    try:
        samples, was_cached = speak(job, engine, line.text, spec, make=make)
        used = engine.name
        voicing.made += not was_cached
        if not was_cached and engine.vendor:
            voicing.calls += 1
            voicing.characters += len(line.text)
    except TTSError as e:
        notes.append(f"shot {shot_id}: TTS failed on {line.text[:16]!r} ({e.message}); that line is silent")
        silence = SilenceEngine()
        silent = silence.synthesize(line.text, spec)
        samples = np.zeros(len(silent.samples) * job.rate // silent.rate, np.float32)
        used = silence.name
        voicing.licences[used] = silence.licence
    voicing.spoken[used] = voicing.spoken.get(used, Fraction(0)) + Fraction(len(samples), job.rate)
    return samples, used, speaker, spec


def voice_shot(job: EpisodeJob, engine: VoiceEngine, voices: dict[str, VoiceSpec], shot: Shot) -> tuple[Voicing, list[str]]:
    """Speak every line of one shot into the cache (a shot's voice task). Returns what it took and its notes."""
    voicing = Voicing(licences={engine.name: engine.licence})
    notes: list[str] = []
    for line in shot.lines:
        job.ctx.check_cancelled()
        speak_line(job, engine, voices, line, voicing, notes, shot.id)
    return voicing, notes


def plan_shots(job: EpisodeJob, engine: VoiceEngine, voices: dict[str, VoiceSpec],
               shots: list[tuple[int, Scene, Shot]], *, make: bool = True) -> Voicing:
    """Speak every line and time the shots around the speech; the plans go into ``job.plans``.

    ``make=False`` reads the speech the shots' voice tasks cached and sends nothing to the engine."""
    fps, rate = job.fps, job.rate
    voicing = Voicing(licences={engine.name: engine.licence})
    offset = 0
    job.plans = []
    for n, (si, scene, shot) in enumerate(shots):
        job.ctx.step(0.2 * n / len(shots), f"配音 {n + 1}/{len(shots)} · voices")
        timed: list[TimedLine] = []
        speech: list[np.ndarray] = []
        notes: list[str] = []
        cursor = LEAD_IN
        for line in shot.lines:
            samples, used, speaker, spec = speak_line(job, engine, voices, line, voicing, notes, shot.id, make=make)
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
        job.plans.append(ShotPlan(si, scene, shot, timed, speech, frames, offset, notes))
        offset += frames
    return voicing


def voice_usage(job: EpisodeJob, engine: VoiceEngine, voicing: Voicing, *, spoken: bool = True) -> list[UsageRecord]:
    """Usage records of the voices: seconds spoken per engine (unless ``spoken`` is False), and the
    calls and characters paid for."""
    ep = job.episode.number
    out = []
    for name, secs in voicing.spoken.items() if spoken else ():
        main = name == engine.name
        out.append(UsageRecord(stage="synth", engine=name, unit="audio_second",
                               quantity=Decimal(secs.numerator) / Decimal(secs.denominator),
                               model=(engine.model or name) if main else name, device="cpu",
                               licence=voicing.licences.get(name, ""), vendor=engine.vendor if main else "",
                               detail={"episode": ep}))
    if voicing.calls and engine.vendor:
        for unit, quantity in (("api_call", voicing.calls), ("character", voicing.characters)):
            out.append(UsageRecord(stage="synth", engine=engine.name, unit=unit, quantity=Decimal(quantity),
                                   model=engine.model or engine.name, vendor=engine.vendor, licence=engine.licence,
                                   detail={"episode": ep}))
    return out


# ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class EpisodeSound:
    """The episode's mixed sound (float32 samples at the job's rate) and what went into it."""

    audio: np.ndarray
    report: MixReport
    music: list[str]
    notes: list[str]

    def for_shot(self, job: EpisodeJob, plan: ShotPlan) -> np.ndarray:
        """The exact samples of one shot's frames."""
        a0 = samples_for_frames(plan.offset, job.fps, job.rate)
        a1 = samples_for_frames(plan.offset + plan.frames, job.fps, job.rate)
        return self.audio[a0:a1]


def mix_sound(job: EpisodeJob) -> EpisodeSound:
    """Voice, music beds (one per scene, crossfaded) and sound effects, mixed once for the episode."""
    fps, rate, plans, sc = job.fps, job.rate, job.plans, job.settings.synth
    total = samples_for_frames(sum(p.frames for p in plans), fps, rate)
    voice_cues = []
    for p in plans:
        for tl, samples in zip(p.timed, p.speech, strict=True):
            voice_cues.append(Cue(samples_for_frames(p.offset + tl.start, fps, rate), samples, tl.text))
    voice = place(voice_cues, total)
    music_lib = SoundLibrary.open(sc.music)
    sfx_lib = SoundLibrary.open(sc.sfx)
    music = None
    used: list[str] = []
    if music_lib:
        music = np.zeros(total, np.float32)
        scenes: dict[str, list[ShotPlan]] = {}
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
                                settings=MixSettings(target_lufs=job.settings.loudness))
    return EpisodeSound(mixed, report, sorted(set(used)), notes)
