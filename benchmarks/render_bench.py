"""Render time of a 20-shot episode: our renderer vs the same edit in moviepy 2 (CompositeVideoClip),
and a cut by stream copy vs a re-encode of the same cut.

The 20 shots are made here as the synth stage makes them: 540x960, 25 fps, 2 s each, H.264 +
AAC, each already carrying the visible "AI生成" mark, with keyframes where a scene dissolve will
end (``core.timeline.cut_keyframes``, every cut being a scene change here). Two edits:

* cuts only — ours copies the video packets and mixes the sound; moviepy decodes and re-encodes;
* 8-frame dissolves between shots — ours encodes the 8 frames of each dissolve and copies the
  rest (smart render); moviepy decodes and re-encodes everything (libx264, preset veryfast,
  crf 20, 2 threads).

    python -m benchmarks.render_bench
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.media import VideoWriter, probe, trim  # noqa: E402
from core.timeline import SCENE_DISSOLVE, Clip, MediaRef, Timeline, Track, Transition, cut_keyframes  # noqa: E402
from pipelines.label import LabelOverlay  # noqa: E402
from pipelines.render import render_timeline  # noqa: E402

W, H, FPS, N, SHOT = 540, 960, Fraction(25), 20, 50


def make_shots(folder: Path) -> list[Path]:
    mark = LabelOverlay.build(W, H)
    yy, xx = np.mgrid[0:H, 0:W]
    paths = []
    for s in range(N):
        p = folder / f"shot{s:02d}.mp4"
        keys = cut_keyframes(SHOT, head=SCENE_DISSOLVE if s else 0, tail=SCENE_DISSOLVE if s + 1 < N else 0)
        with VideoWriter(p, W, H, FPS, crf=20, audio_rate=48000, keyframes=keys) as w:
            for i in range(SHOT):
                img = np.stack([(xx + 7 * i + 40 * s) % 256, (yy + 3 * i) % 256, ((xx + yy) // 3 + 20 * s) % 256], -1)
                w.write(mark.apply(img.astype(np.uint8)))
            t = np.arange(SHOT * 1920) / 48000
            w.write_audio((0.2 * np.sin(2 * np.pi * (200 + 20 * s) * t)).astype(np.float32))
        paths.append(p)
    return paths


def timeline(paths: list[Path], dissolve: int) -> Timeline:
    clips, trs, t = [], [], 0
    for i, p in enumerate(paths):
        m = MediaRef(str(p), FPS, SHOT, W, H)
        head = dissolve // 2 if i and dissolve else 0
        tail = dissolve - dissolve // 2 if i + 1 < len(paths) and dissolve else 0
        clips.append(Clip(m, t, SHOT - head - tail, head))
        if head:
            trs.append(Transition("dissolve", t, dissolve - dissolve // 2, dissolve // 2))
        t += SHOT - head - tail
    return Timeline("bench", FPS, W, H, (Track("video", "V1", tuple(clips), tuple(trs)),
                                          Track("audio", "A1", tuple(clips))))


def moviepy_render(tl: Timeline, dst: Path) -> None:
    from moviepy import CompositeVideoClip, VideoFileClip, vfx

    vt = tl.video_tracks[0]
    parts = []
    for c in vt.clips:
        src = VideoFileClip(c.media.path)
        sub = src.subclipped(float(Fraction(c.source_in) / FPS), float(Fraction(c.source_in + c.duration) / FPS))
        tr = next((x for x in vt.transitions if x.at == c.start), None)
        start = float(Fraction(c.start - (tr.before if tr else 0)) / FPS)
        if tr:  # the incoming clip starts earlier and fades in over the outgoing one
            sub = src.subclipped(float(Fraction(c.source_in - tr.after) / FPS),
                                 float(Fraction(c.source_in + c.duration) / FPS))
            sub = sub.with_effects([vfx.CrossFadeIn(float(Fraction(tr.before + tr.after) / FPS))])
        parts.append(sub.with_start(start))
    comp = CompositeVideoClip(parts, size=(W, H))
    comp.write_videofile(str(dst), fps=float(FPS), codec="libx264", audio_codec="aac", preset="veryfast",
                         ffmpeg_params=["-crf", "20"], threads=2, logger=None)


def timed(fn, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as tmp:
        folder = Path(tmp)
        paths = make_shots(folder)
        mp_times: dict[int, float] = {}
        for name, dissolve, copy in (("cuts only", 0, "auto"), ("8-frame dissolves", 8, "auto"),
                                     ("8-frame dissolves, everything re-encoded", 8, "never")):
            tl = timeline(paths, dissolve)
            res, ours = timed(render_timeline, tl, folder / f"ours{dissolve}{copy}.mp4", label=True, copy=copy)
            if dissolve not in mp_times:
                _, mp_times[dissolve] = timed(moviepy_render, tl, folder / f"moviepy{dissolve}.mp4")
            mp = mp_times[dissolve]
            rows.append((name, tl.duration, res.mode, ours, mp))
            print(f"{name}: ours {ours:.2f}s ({res.mode}; {'; '.join(res.notes)}), moviepy {mp:.2f}s, "
                  f"ratio {ours / mp:.3f}", flush=True)
        # one cut, keyframe to keyframe: stream copy vs re-encode
        src = Path(__file__).parent / ".data" / "speed640.mp4"
        cut_rows = []
        if src.exists():
            from core.media import _keyframe_indices

            v = probe(src).video
            assert v is not None
            keys, _ = _keyframe_indices(src, v.fps, v.time_base)
            a, b = keys[2], keys[min(len(keys) - 1, 12)]
            r1, t_copy = timed(trim, src, folder / "c.mp4", a, b, copy="always")
            r2, t_enc = timed(trim, src, folder / "e.mp4", a, b, copy="never")
            cut_rows.append((b - a, t_copy, t_enc, r1.mode, r2.mode))
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; moviepy 2.2.1, libx264 veryfast crf 20")
    print()
    print("| edit (20 shots, 540x960, 25 fps) | frames | ours | ours mode | moviepy CompositeVideoClip | ours / moviepy |")
    print("|---|---:|---:|---|---:|---:|")
    for name, frames, mode, ours, mp in rows:
        print(f"| {name} | {frames} | {ours:.2f}s | {mode} | {mp:.2f}s | {ours / mp:.3f} |")
    for frames, tc, te, _m1, _m2 in cut_rows:
        print()
        print(f"One cut of {frames} frames of speed640.mp4 (640x360): stream copy {tc:.2f}s vs re-encode {te:.2f}s "
              f"({te / tc:.1f}x slower)")


if __name__ == "__main__":
    main()
