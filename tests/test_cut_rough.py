"""Rough cut of a project: timeline from the screenplay's shots, trimming, music, export, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from agents.base import RunContext
from agents.cut import build_episode_timeline, export_project, rough_cut_project
from agents.synth import EpisodeRender, SynthAgent, SynthInput
from core.config import load_config
from core.media import probe, read_audio, write_wav
from core.screenplay import Character, Episode, Line, LineKind, Scene, Series, Shot
from core.timeline import Timeline
from core.workspace import Workspace
from pipelines.label import check_media
from pipelines.subtitles import parse_srt
from pipelines.timeline.jianying import read_draft
from pipelines.timeline.otio_io import read_timeline

ROOT = Path(__file__).resolve().parents[1]


def series() -> Series:
    s1 = Scene(id="e01s01", place="未庄", shots=[Shot(id="e01s01k00", seconds=2.0),
                                               Shot(id="e01s01k01", lines=[Line(speaker="阿Q", text="我们先前比你阔的多啦！")])])
    s2 = Scene(id="e01s02", place="土谷祠", time_of_day="night",
               shots=[Shot(id="e01s02k00", lines=[Line(speaker="", text="阿Q没有家。", kind=LineKind.NARRATION)]),
                      Shot(id="e01s02k01", lines=[Line(speaker="赵太爷", text="你那里配姓赵！")])])
    return Series(title="测试剧", characters=[Character(name="阿Q"), Character(name="赵太爷")],
                  episodes=[Episode(number=1, title="开端", target_seconds=60, scenes=[s1, s2])])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proj") / "demo"
    ws = Workspace(root).create({})
    s = series()
    s.save(ws.screenplay_path)
    ctx = RunContext(config=load_config())
    SynthAgent()(SynthInput(series=s, episode=1, out_dir=ws.synth_dir(1), width=320, height=568, tts="silence"), ctx)
    return root


def test_rough_cut_renders_a_labelled_episode_with_ducked_music(project: Path, tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(rate * 20) / rate
    music = write_wav(tmp_path / "bgm.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate)
    out = rough_cut_project(project, music=music)
    tl = Timeline.load(out.timeline)
    render = EpisodeRender.load(Workspace(project).synth_dir(1) / "render.json")
    # under the 60 s target nothing is trimmed; the scene dissolve overlaps 8 frames of the two shots
    assert tl.duration == render.total_frames - 8 == out.frames
    assert [m.name for m in tl.markers] == ["e01s01", "e01s02"]
    v = tl.video_tracks[0]
    assert [tr.kind for tr in v.transitions] == ["dissolve", "fade_in", "fade_out"]
    music_track = next(t for t in tl.tracks if t.role == "music")
    assert any(g < -10 for _, g in music_track.clips[0].envelope)  # ducked under the lines
    assert out.video is not None
    info = probe(out.video)
    assert info.video is not None and info.video.frames == tl.duration
    # synth puts keyframes where the dissolve and the fades end: only those frames are encoded
    assert any(n.startswith("smart render:") and f"{8 + 12 + 12} encoded in 3 pieces" in n for n in out.notes), out.notes
    assert abs(len(read_audio(out.video)) - tl.duration * rate // 25) <= 1024  # within one AAC frame
    report = check_media(out.video)
    assert report.ok and report.visible, report.notes
    assert [c[2] for c in parse_srt(out.srt.read_text(encoding="utf-8"))] == \
        ["我们先前比你阔的多啦！", "阿Q没有家。", "你那里配姓赵！"]
    assert "Style: Narration" in out.ass.read_text(encoding="utf-8-sig")


def test_trim_to_target_keeps_every_line(project: Path) -> None:
    ws = Workspace(project)
    render = EpisodeRender.load(ws.synth_dir(1) / "render.json")
    from agents.cut import RoughCutSettings

    target = render.total_frames - 40
    notes: list[str] = []
    tl = build_episode_timeline(render, ws.synth_dir(1), settings=RoughCutSettings(target_frames=target), notes=notes)
    assert tl.duration <= target
    for cap, shot in zip(tl.captions, [s for s in render.shots if s.lines], strict=True):
        assert cap.end - cap.start == shot.lines[0].end - shot.lines[0].start  # no line was clipped
    too_short = build_episode_timeline(render, ws.synth_dir(1), settings=RoughCutSettings(target_frames=10),
                                       notes=notes)
    assert any("over the target" in n for n in notes) and too_short.duration > 10


@pytest.mark.parametrize("fmt", ["otio", "fcpxml", "fcp7", "edl", "jianying"])
def test_export_every_format(project: Path, fmt: str) -> None:
    path, _ = export_project(project, fmt)
    assert path.exists()
    tl = Timeline.load(Workspace(project).out_dir / "ep01.timeline.json") if \
        (Workspace(project).out_dir / "ep01.timeline.json").exists() else None
    back = read_draft(path) if fmt == "jianying" else read_timeline(path, fmt, fps=Fraction(25))
    assert back.video_tracks and len(back.video_tracks[0].clips) == 4
    if tl is not None and fmt != "edl":
        assert [c.start for c in back.video_tracks[0].clips] == [c.start for c in tl.video_tracks[0].clips]


def test_user_footage_in_shot_order_with_script_subtitles(project: Path, tmp_path: Path) -> None:
    from core.media import VideoWriter
    from tests.media_utils import tone

    clips = []
    for i in range(4):
        p = tmp_path / f"take{i}.mp4"
        with VideoWriter(p, 320, 568, Fraction(25), audio_rate=48000) as w:
            for _ in range(50):
                w.write(np.full((568, 320, 3), 40 * i, np.uint8))
            # speech from 0.4 s to 1.4 s
            w.write_audio(np.concatenate([np.zeros(19200, np.float32), tone(48000, 48000),
                                          np.zeros(48000 * 2 - 19200 - 48000, np.float32)]))
        clips.append(p)
    out = rough_cut_project(project, footage=clips, render=False)
    tl = Timeline.load(out.timeline)
    assert [Path(c.media.path).name for c in tl.video_tracks[0].clips] == [p.name for p in clips]
    caps = [(c.start, c.end, c.text) for c in tl.captions]
    assert [c[2] for c in caps] == ["我们先前比你阔的多啦！", "阿Q没有家。", "你那里配姓赵！"]
    starts = [c.start for c in tl.video_tracks[0].clips]
    assert all(any(c[0] - s == 10 for s in starts) for c in caps)  # timed to the heard speech (0.4 s in)


def test_cli_rough_and_export(project: Path) -> None:
    run = [sys.executable, "-m", "ui.cli", "-q", "cut"]
    r = subprocess.run(run + ["rough", str(project), "--no-render"], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ep01.timeline.json")
    e = subprocess.run(run + ["export", str(project), "--format", "jianying"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert e.returncode == 0, e.stderr
    folder = Path(e.stdout.strip())
    assert json.loads((folder / "draft_content.json").read_text(encoding="utf-8"))["version"] == 360000
    bad = subprocess.run(run + ["export", str(project.parent / "nope"), "--format", "otio"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 1 and "not a ReelForge project" in bad.stderr


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, str):
        try:
            inner = _strings(json.loads(value)) if value.startswith(("{", "[")) else []
        except ValueError:
            inner = []
        return [value, *inner]
    return []


def test_packaged_jianying_export_for_windows_holds_every_media_file(project: Path, tmp_path: Path) -> None:
    root = "C:/Users/NAME/Videos/drama"
    folder, _ = export_project(project, "jianying", target_root=root, package="copy",
                               out=tmp_path / "drafts" / "测试剧第1集")
    content = json.loads((folder / "draft_content.json").read_text(encoding="utf-8"))
    meta = json.loads((folder / "draft_meta_info.json").read_text(encoding="utf-8"))
    render = EpisodeRender.load(Workspace(project).synth_dir(1) / "render.json")
    referenced = {m["path"] for kind in ("videos", "audios") for m in content["materials"][kind]}
    assert len(referenced) >= 2 * len(render.shots)  # every shot's video and its voice
    base = f"{root}/测试剧第1集/"
    for p in referenced | {v["file_Path"] for v in meta["draft_materials"][0]["value"]}:
        assert p.startswith(base + "media/") and (folder / p[len(base):]).is_file(), p
    here = (str(project), str(project.resolve()), str(tmp_path), str(ROOT))
    for f in (folder / "draft_content.json", folder / "draft_meta_info.json"):
        for s in _strings(json.loads(f.read_text(encoding="utf-8"))):
            assert not any(h in s for h in here) and not s.startswith("/"), f"{f.name}: {s!r}"
    assert meta["draft_fold_path"] == base.rstrip("/") and meta["draft_root_path"] == root.replace("/", "\\")
    video = next(t for t in content["tracks"] if t["type"] == "video")
    assert all(s["volume"] == 0.0 for s in video["segments"])  # the dialogue plays once, from the WAVs
    texts = content["materials"]["texts"]
    assert texts and all(t["check_flag"] == 15 for t in texts)
    draft = pytest.importorskip("pyJianYingDraft")
    script = draft.DraftFolder(str(folder.parent)).load_template(folder.name)
    assert len(script.get_imported_track(draft.TrackType.video).segments) == len(video["segments"])


def test_cli_packaged_export_for_a_mac(project: Path) -> None:
    run = [sys.executable, "-m", "ui.cli", "-q", "cut", "export", str(project)]
    r = subprocess.run(run + ["--format", "fcpxml", "--target-root", "/Users/NAME/Movies/drama", "--package", "link"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path.parent.name == "ep01_fcpxml" and path.name == "ep01.fcpxml"
    text = path.read_text(encoding="utf-8")
    assert 'src="file:///Users/NAME/Movies/drama/ep01_fcpxml/media/' in text and str(project) not in text
    assert any((path.parent / "media").iterdir())
    dtd = Path(os.environ.get("REELFORGE_FCPXML_DTD_DIR", "/nonexistent")) / "FCPXMLv1_9.dtd"
    if dtd.is_file() and shutil.which("xmllint"):  # the real episode against Apple's DTD (see test_timeline_handoff)
        v = subprocess.run(["xmllint", "--noout", "--dtdvalid", str(dtd), str(path)], capture_output=True, text=True,
                           timeout=60)
        assert v.returncode == 0, v.stderr
    bad = subprocess.run(run + ["--format", "edl", "--target-root", "drama"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert bad.returncode == 1 and "not an absolute path" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(run + ["--format", "avid"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 1 and "unknown export format 'avid'" in bad.stderr
