"""Cut agent (foundation): assemble an episode's shot clips into one MP4 and its SRT.

Shot clips were encoded alike by the synth agent, so their video packets are joined by stream
copy (no quality loss, fast); the sound is rebuilt from each shot's lossless WAV cut to the
exact samples of its frames, so the episode's duration is the sum of its shots to the frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from agents.base import Agent, AgentResult, RunContext
from agents.synth import EpisodeRender
from core.aigc import label_metadata, make_label
from core.errors import InputError
from core.media import concat
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
        if not shots:
            raise InputError("the episode render has no shots", hint="run the synth stage first")
        clips = [inp.synth_dir / s.clip for s in shots]
        wavs = [inp.synth_dir / s.audio for s in shots]
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
