"""Cut agent: assemble an episode's shot clips into one MP4 and its SRT, and build rough cuts.

``CutAgent`` (used by the Studio) joins the shots as they are. ``rough_cut_project`` builds the
episode timeline (transitions, captions, ducked music, trimming to the target length, or user
footage in place of generated shots) and renders it; ``export_project`` hands the timeline to an
editor (OTIO, FCPXML, FCP7 XML, EDL, 剪映).

Shot clips were encoded alike by the synth agent, so their video packets are joined by stream
copy (no quality loss, fast); the sound is rebuilt from each shot's lossless WAV cut to the
exact samples of its frames, so the episode's duration is the sum of its shots to the frame.

The review gate: with ``[review] required`` on (or ``--review-required``), an episode with any
shot not approved in review is not assembled; the error names the shots. Off (the default, so a
headless ``make`` runs through), unapproved shots are assembled with a warning. Every file of the
render is opened through :func:`core.paths.safe_join`, so a render cannot point outside its folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from agents.base import Agent, AgentResult, RunContext
from agents.synth import EpisodeRender
from core.aigc import label_metadata, make_label
from core.errors import FieldError, InputError
from core.media import concat
from core.paths import safe_join
from core.timeline import (
    EPISODE_FADE,
    SCENE_DISSOLVE,
    Caption,
    Clip,
    Marker,
    MediaRef,
    Timeline,
    Track,
    Transition,
)
from core.usage import UsageRecord, seconds_since
from pipelines.subtitles import Cue, write_srt

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CutInput:
    render: EpisodeRender
    synth_dir: Path  # folder the render's relative paths start from
    video_out: Path
    srt_out: Path
    title: str = ""
    producer: str = "ReelForge"
    review_required: bool = False  # [review] required: refuse to assemble while a shot is unapproved

    def check(self) -> None:
        """Refuse bad values before any work, naming the field, the value and the fix."""
        if not isinstance(self.render, EpisodeRender):
            raise FieldError("render", type(self.render).__name__, "is not an episode render",
                             hint="load it with EpisodeRender.load(PROJECT/synth/epNN/render.json)")
        if not self.render.shots:
            raise InputError("the episode render has no shots", hint="run the synth stage first")
        if not self.synth_dir.is_dir():
            raise FieldError("synth_dir", str(self.synth_dir), "is not a folder",
                             hint="the episode's synth folder, e.g. PROJECT/synth/ep01 (run the synth stage first)")
        if self.video_out.is_dir():
            raise FieldError("video_out", str(self.video_out), "is a folder", hint="name the episode file, e.g. out/ep01.mp4")
        if self.srt_out.suffix.lower() != ".srt":
            raise FieldError("srt_out", str(self.srt_out), "must end in .srt", hint="e.g. out/ep01.srt")
        if self.srt_out.resolve() == self.video_out.resolve():
            raise FieldError("srt_out", str(self.srt_out), "is the same file as video_out", hint="e.g. out/ep01.srt")


class ReviewPending(InputError):
    """The review gate is on and shots are not approved yet; nothing was assembled."""


def review_gate(render: EpisodeRender, required: bool, warn: Callable[[str], None]) -> None:
    """Refuse (``required``) or warn about an episode whose shots are not all approved in review."""
    pending = render.unapproved()
    if not pending:
        return
    shown = ", ".join(pending[:10]) + ("…" if len(pending) > 10 else "")
    if required:
        raise ReviewPending(
            f"episode {render.episode}: {len(pending)} of {len(render.shots)} shot(s) are not approved in review "
            f"({shown}); the episode was not assembled",
            hint=f"approve them (reelforge synth PROJECT --episode {render.episode} --approve SHOT, or the studio's "
                 "review tab), or turn the gate off ([review] required = false, --no-review-required)")
    if len(pending) < len(render.shots):  # the review gate is in use and not finished
        warn(f"episode {render.episode}: {len(pending)} shot(s) not approved in review yet "
             f"({', '.join(pending[:5])}{'…' if len(pending) > 5 else ''}); assembled as they are")


@dataclass(frozen=True, slots=True)
class CutOutput:
    video: Path
    srt: Path
    frames: int
    mode: str  # "copy" or "encode"
    cues: int


def episode_cues(render: EpisodeRender) -> list[Cue]:
    cues: list[Cue] = []
    offset = 0
    for shot in render.shots:
        for line in shot.lines:
            cues.append(Cue(offset + line.start, offset + min(line.end, shot.frames), line.text, line.speaker))
        offset += shot.frames
    return cues


class CutAgent(Agent[CutInput, CutOutput]):
    name = "cut"
    description = "shot clips -> episode MP4 (H.264 + AAC) and SRT subtitles"

    def run(self, inp: CutInput, ctx: RunContext) -> AgentResult[CutOutput]:
        start = time.perf_counter()
        shots = inp.render.shots
        review_gate(inp.render, inp.review_required, ctx.warn)
        clips = [safe_join(inp.synth_dir, s.clip) for s in shots]
        wavs = [safe_join(inp.synth_dir, s.audio) for s in shots]
        for path in clips + wavs:
            if not path.exists():
                raise InputError(f"shot file {str(path)!r} is missing", hint="re-run the synth stage")
        ctx.step(0.05, "拼接镜头 · joining shots")
        label = make_label(inp.producer, f"{inp.title}|ep{inp.render.episode}|" + "|".join(s.key for s in shots))
        meta = label_metadata(label)
        if inp.title:
            meta["title"] = f"{inp.title} 第{inp.render.episode}集"
        result = concat(clips, inp.video_out, audio_from=wavs, audio_rate=inp.render.audio_rate, metadata=meta)
        if result.mode != "copy":
            ctx.warn(f"episode {inp.render.episode}: shot clips could not be joined by stream copy; re-encoded")
        expected = inp.render.total_frames
        if result.frames != expected:
            raise InputError(f"episode has {result.frames} frames after joining, expected {expected}")
        ctx.step(0.9, "写字幕 · writing subtitles")
        cues = episode_cues(inp.render)
        write_srt(inp.srt_out, cues, inp.render.fps_fraction)
        elapsed = seconds_since(start, time.perf_counter())
        usage = [UsageRecord(stage=self.name, engine=f"concat-{result.mode}", unit="cpu_second", quantity=elapsed,
                             seconds=elapsed, device="cpu", licence="LGPL-2.1 (FFmpeg via PyAV)",
                             detail={"episode": inp.render.episode, "frames": result.frames})]
        ctx.record(usage)
        ctx.step(1.0, "成片完成 · episode assembled")
        out = CutOutput(inp.video_out, inp.srt_out, result.frames, result.mode, len(cues))
        log.info("cut: %s (%d frames, %s)", inp.video_out, result.frames, result.mode)
        return AgentResult(output=out, engine=f"concat-{result.mode}", files=[inp.video_out, inp.srt_out], usage=usage,
                           seconds=Decimal(0))


# ============================================================================================
# Rough cut: the episode timeline from the screenplay's shots and the available clips
# ============================================================================================
@dataclass(frozen=True, slots=True)
class RoughCutSettings:
    target_frames: int | None = None  # trim to this length (None: keep every frame)
    scene_dissolve: int = SCENE_DISSOLVE  # frames of dissolve at scene changes (0: hard cuts only)
    fade: int = EPISODE_FADE  # fade in from / out to black at the episode's ends (0: none)
    min_tail: int = 6  # frames kept after a shot's last line when trimming
    music_db: float = -12.0  # music level under no dialogue
    duck_db: float = -14.0  # further reduction while someone speaks
    duck_ramp: int = 6  # frames to duck in / out


@dataclass(slots=True)
class RoughCutOutput:
    timeline: Path
    video: Path | None
    srt: Path
    ass: Path
    frames: int
    notes: list[str]


def _media_for(path: Path, fps: Fraction) -> MediaRef:
    from core.media import probe

    info = probe(path)
    v = info.video
    if v is None:  # an audio file (a shot's WAV): measure it in timeline frames
        secs = info.duration or Fraction(0)
        return MediaRef(str(path), fps, int(secs * fps), 0, 0, False, info.audio is not None)
    w, h = v.display_size
    return MediaRef(str(path), v.fps, v.frames, w, h, True, info.audio is not None)


def _trim_lengths(render: EpisodeRender, target: int | None, s: RoughCutSettings, notes: list[str]) -> list[int]:
    """Per-shot lengths after trimming silent tails (then silent shots) to reach ``target``."""
    lengths = [sh.frames for sh in render.shots]
    if target is None or sum(lengths) <= target:
        return lengths
    floors = [min(sh.frames, max((ln.end for ln in sh.lines), default=sh.frames // 2) + s.min_tail)
              for sh in render.shots]
    excess = sum(lengths) - target
    slack = sum(lengths[i] - floors[i] for i in range(len(lengths)))
    if slack > 0:
        take = min(excess, slack)
        cut = [(lengths[i] - floors[i]) * take // slack for i in range(len(lengths))]
        short = take - sum(cut)
        for i in range(len(lengths)):  # hand out the rounding remainder
            if short and lengths[i] - floors[i] - cut[i] > 0:
                cut[i] += 1
                short -= 1
        lengths = [ln - c for ln, c in zip(lengths, cut, strict=True)]
    for i in reversed(range(len(lengths))):  # then drop shots without dialogue, from the end
        if sum(lengths) <= target:
            break
        if not render.shots[i].lines and lengths[i]:
            notes.append(f"shot {render.shots[i].id} dropped to reach the target length")
            lengths[i] = 0
    if sum(lengths) > target:
        notes.append(f"the cut is {sum(lengths) - target} frames over the target: every remaining frame has dialogue")
    return lengths


def _duck_envelope(spans: list[tuple[int, int]], s: RoughCutSettings, end: int) -> tuple[tuple[int, float], ...]:
    points: list[tuple[int, float]] = [(0, 0.0)]
    for a, b in sorted(spans):
        a0, b1 = max(0, a - s.duck_ramp), min(end, b + s.duck_ramp)
        if points and a0 <= points[-1][0]:
            a0 = points[-1][0] + 1 if points[-1][1] == 0.0 else points[-1][0]
        points += [(a0, 0.0), (a, s.duck_db), (b, s.duck_db), (b1, 0.0)]
    clean: list[tuple[int, float]] = []
    for f, g in points:
        if clean and f <= clean[-1][0]:
            clean[-1] = (clean[-1][0], min(clean[-1][1], g))
        else:
            clean.append((f, g))
    return tuple(clean)


def build_episode_timeline(render: EpisodeRender, synth_dir: Path, *, title: str = "",
                           settings: RoughCutSettings | None = None, music: Path | None = None,
                           footage: list[Path] | None = None, notes: list[str] | None = None) -> Timeline:
    """The episode as a timeline: picture (generated shots, or user footage in shot order), the
    voice, captions from the script lines, scene markers, dissolves at scene changes, fades at the
    ends, and music ducked under every line."""
    s = settings or RoughCutSettings()
    notes = notes if notes is not None else []
    fps = render.fps_fraction
    if not render.shots:
        raise InputError("the episode render has no shots", hint="run the synth stage first")
    lengths = _trim_lengths(render, s.target_frames, s, notes)
    pictures: list[MediaRef] = []
    voices: list[MediaRef | None] = []
    if footage:
        matched = match_footage(render, footage, notes)
        for path in matched:
            m = _media_for(path, fps)
            pictures.append(m)
            voices.append(m if m.has_audio else None)
    else:
        for sh in render.shots:
            pictures.append(_media_for(safe_join(synth_dir, sh.clip), fps))
            voices.append(_media_for(safe_join(synth_dir, sh.audio), fps))
    v_clips, a_clips, captions, markers, spans = [], [], [], [], []
    transitions: list[Transition] = []
    kept = [(sh, n, pic, voice) for sh, n, pic, voice in zip(render.shots, lengths, pictures, voices, strict=True)
            if n > 0]
    half_in = s.scene_dissolve - s.scene_dissolve // 2  # frames after the cut
    half_out = s.scene_dissolve // 2  # frames before it
    # a dissolve needs media under it: the incoming shot lends its first frames (the breath before
    # its first line), the outgoing one its last (the pause after its last line)
    change = [i > 0 and kept[i][0].scene_id != kept[i - 1][0].scene_id and s.scene_dissolve > 0
              for i in range(len(kept))]
    t = 0
    for i, (sh, n, pic, voice) in enumerate(kept):
        if footage:  # footage shorter than the shot: the shot gets shorter
            n = min(n, max(1, int(Fraction(pic.frames) / pic.fps * fps)))
        head = half_in if change[i] else 0
        tail = half_out if i + 1 < len(kept) and change[i + 1] else 0
        if n - head - tail < 2:
            head = tail = 0
        dur = n - head - tail
        v_clips.append(Clip(pic, t, dur, head if not footage else 0, name=sh.id))
        if voice is not None:
            a_clips.append(Clip(voice, t, dur, head if not footage else 0, name=sh.id))
        if i == 0 or sh.scene_id != kept[i - 1][0].scene_id:
            markers.append(Marker(t, sh.scene_id, note=f"scene {sh.scene_id}"))
            if change[i] and head:
                transitions.append(Transition("dissolve", t, half_out, half_in))
        if not footage:
            for ln in sh.lines:
                a, b = t + ln.start - head, t + min(ln.end - head, dur)
                if b > a:
                    captions.append(Caption(max(t, a), b, ln.text, ln.speaker))
                    spans.append((max(t, a), b))
        t += dur
    if s.fade and t > 4 * s.fade:
        transitions += [Transition("fade_in", 0, 0, s.fade), Transition("fade_out", t, s.fade, 0)]
    tracks = [Track("video", "V1", tuple(v_clips), tuple(transitions)),
              Track("audio", "A1", tuple(a_clips), role="dialogue")]
    if footage and a_clips:
        captions, spans = _footage_captions(render, v_clips, a_clips, fps, notes)
    if music is not None:
        m = _media_for(music, fps)
        music_clips, at = [], 0
        while at < t:  # loop the music under the whole episode
            n = min(t - at, m.frames) if m.frames else t - at
            if n <= 0:
                break
            music_clips.append(Clip(m, at, n, 0, name="music", gain_db=s.music_db))
            at += n
        env = _duck_envelope(spans, s, t)
        music_clips = [Clip(c.media, c.start, c.duration, c.source_in, c.name, c.gain_db, env) for c in music_clips]
        tracks.append(Track("audio", "A2", tuple(music_clips), role="music"))
    return Timeline(name=title or render.title or f"ep{render.episode:02d}", fps=fps, width=render.width,
                    height=render.height, tracks=tuple(tracks), captions=tuple(captions), markers=tuple(markers),
                    metadata={"episode": str(render.episode), "engine": render.engine}).validate()


def match_footage(render: EpisodeRender, footage: list[Path], notes: list[str]) -> list[Path]:
    """One footage file per shot: by text when the footage has a transcript (a ``.srt``/``.txt``
    beside it), else in order; shots beyond the footage reuse the last file (reported)."""
    import difflib

    if not footage:
        raise InputError("no footage given")
    for p in footage:
        if not p.exists():
            raise InputError(f"footage {str(p)!r} does not exist")
    transcripts: dict[Path, str] = {}
    for p in footage:
        for side in (p.with_suffix(".srt"), p.with_suffix(".txt")):
            if side.exists():
                text = side.read_text(encoding="utf-8", errors="replace")
                transcripts[p] = "".join(ch for ch in text if not ch.isascii() or ch.isalpha())
    out: list[Path] = []
    free = list(footage)
    for i, sh in enumerate(render.shots):
        said = "".join(ln.text for ln in sh.lines)
        if said and transcripts and free:
            best = max(free, key=lambda p: difflib.SequenceMatcher(None, said, transcripts.get(p, "")).ratio())
            if difflib.SequenceMatcher(None, said, transcripts.get(best, "")).ratio() > 0.3:
                out.append(best)
                free.remove(best)
                continue
        if free:
            out.append(free.pop(0))
        else:
            out.append(footage[min(i, len(footage) - 1)])
            notes.append(f"shot {sh.id}: no footage left, reusing {out[-1].name}")
    return out


def _footage_captions(render: EpisodeRender, v_clips: list[Clip], a_clips: list[Clip], fps: Fraction,
                      notes: list[str]) -> tuple[list[Caption], list[tuple[int, int]]]:
    """Script lines timed to the speech heard in each footage clip (the words are the script's)."""
    from core.media import read_audio
    from pipelines.silence import SilenceParams, frame_loudness, speech_runs
    from pipelines.subtitles import align_to_speech

    caps: list[Caption] = []
    spans: list[tuple[int, int]] = []
    by_id = {sh.id: sh for sh in render.shots}
    for clip in a_clips:
        sh = by_id.get(clip.name)
        if sh is None or not sh.lines:
            continue
        rate = 16000
        loud = frame_loudness(read_audio(clip.media.path, rate=rate), rate, clip.media.fps, clip.media.frames)
        runs = [(a, min(b, clip.duration)) for a, b in speech_runs(loud, clip.media.fps, SilenceParams(margin=0))
                if a < clip.duration]
        if not runs:
            notes.append(f"shot {sh.id}: no speech heard in {Path(clip.media.path).name}; its lines are spread over the shot")
            runs = [(0, clip.duration)]
        for cue in align_to_speech([(ln.speaker, ln.text) for ln in sh.lines], runs):
            caps.append(Caption(clip.start + cue.start, clip.start + cue.end, cue.text, cue.speaker))
            spans.append((clip.start + cue.start, clip.start + cue.end))
    return caps, spans


def _workspace_render(project: Path, episode: int) -> tuple[Any, EpisodeRender, str, float]:
    from core.screenplay import Series
    from core.workspace import Workspace

    ws = Workspace(project).require()
    render = EpisodeRender.load(ws.synth_dir(episode) / "render.json")
    title, target = "", 0.0
    if ws.screenplay_path.exists():
        series = Series.load(ws.screenplay_path)
        title = series.title
        target = series.episode(episode).target_seconds
    return ws, render, title, target


def rough_cut_project(project: Path, *, episode: int = 1, target_seconds: float | None = None,
                      footage: list[Path] | None = None, music: Path | None = None, render: bool = True,
                      burn_subtitles: bool = False, label_style: Any = None,
                      review_required: bool | None = None) -> RoughCutOutput:
    """``reelforge cut rough``: timeline JSON, SRT + ASS, and (unless ``render=False``) the rendered
    rough cut with the visible mark and the AIGC tag, all under ``out/``. ``review_required``
    (None: ``[review] required`` in the config) refuses to render while a shot is unapproved."""
    from core.config import load_config
    from pipelines.render import render_timeline
    from pipelines.subtitles import write_ass

    ws, er, title, target = _workspace_render(project, episode)
    if render:
        required = load_config().review.required if review_required is None else review_required
        review_gate(er, required, lambda m: log.warning("rough cut: %s", m))
    seconds = target_seconds if target_seconds is not None else (target or None)
    fps = er.fps_fraction
    notes: list[str] = []
    settings = RoughCutSettings(target_frames=int(Fraction(seconds).limit_denominator(1000) * fps) if seconds else None)
    tl = build_episode_timeline(er, ws.synth_dir(episode), title=f"{title} 第{episode}集" if title else "",
                                settings=settings, music=music, footage=footage, notes=notes)
    base = ws.out_dir / f"ep{episode:02d}_rough"
    tl_path = tl.save(ws.out_dir / f"ep{episode:02d}.timeline.json")
    cues = [Cue(c.start, c.end, c.text, c.speaker) for c in tl.captions]
    srt = write_srt(base.with_suffix(".srt"), cues, fps)
    ass = write_ass(base.with_suffix(".ass"), cues, fps, tl.width, tl.height, title=tl.name)
    video = None
    if render:
        cfg = load_config()
        lab = cfg.label
        from pipelines.cards import LabelStyle

        style = label_style or LabelStyle(lab.text, lab.position, lab.opacity, lab.enabled)
        label = make_label(lab.producer, f"{tl.name}|rough|" + "|".join(map(str, tl.cuts())))
        res = render_timeline(tl, base.with_suffix(".mp4"), label=style.enabled, style=style, aigc=label,
                              burn_captions=burn_subtitles, title=tl.name)
        video = res.path
        notes += res.notes
    for n in notes:
        (log.info if n.startswith("smart render") else log.warning)("rough cut: %s", n)
    return RoughCutOutput(tl_path, video, srt, ass, tl.duration, notes)


def export_project(project: Path, fmt: str, *, episode: int = 1, out: Path | None = None,
                   target_root: str | None = None, package: str | None = None) -> tuple[Path, list[str]]:
    """``reelforge cut export``: the episode's timeline (the rough cut's, else one built from the
    synth render) as OTIO, FCPXML, FCP7 XML, EDL or a 剪映 draft folder.

    ``package`` ("copy" or "link") puts the media into the export (a packaged file format gets its
    own folder, ``out/ep01_fcpxml/``); ``target_root`` is the folder on the editing machine that
    will hold it (for 剪映 its drafts folder), and every path is written as it will be there."""
    from pipelines.timeline import export_timeline, exporter

    exp = exporter(fmt)
    ws, er, title, _ = _workspace_render(project, episode)
    tl_path = ws.out_dir / f"ep{episode:02d}.timeline.json"
    if tl_path.exists():
        tl = Timeline.load(tl_path)
    else:
        tl = build_episode_timeline(er, ws.synth_dir(episode), title=f"{title} 第{episode}集" if title else "")
    stem = f"ep{episode:02d}"
    if out is not None:
        dst = out
    elif package and not exp.folder:
        dst = ws.out_dir / f"{stem}_{fmt}" / exp.default_name(stem)
    else:
        dst = ws.out_dir / exp.default_name(stem)
    return export_timeline(tl, dst, fmt, target_root=target_root, package=package)
