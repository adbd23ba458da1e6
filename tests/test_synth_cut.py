from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from agents.base import RunContext
from agents.cut import CutAgent, CutInput
from agents.synth import EpisodeRender, SynthAgent, SynthInput
from core.aigc import read_label
from core.config import load_config
from core.media import iter_frames, probe, read_audio
from core.screenplay import Character, Episode, Line, LineKind, Scene, Series, Shot
from core.usage import UsageStore
from pipelines.cards import CardSpec, render_card, wrap_text
from pipelines.subtitles import parse_srt
from pipelines.tts import (
    ENGINES,
    SilenceEngine,
    VoiceSpec,
    assign_voice,
    available_engines,
    get_engine,
    speakable,
)


def series() -> Series:
    lines = [
        Line(speaker="阿Q", text="我们先前——比你阔的多啦！"),
        Line(speaker="赵太爷", text="你那里配姓赵！"),
        Line(speaker="", text="阿Q没有家，住在未庄的土谷祠里。", kind=LineKind.NARRATION),
    ]
    shots = [Shot(id="e01s01k00", seconds=2.0)] + [Shot(id=f"e01s01k{i + 1:02d}", lines=[ln]) for i, ln in enumerate(lines)]
    scene = Scene(id="e01s01", place="未庄", time_of_day="day", int_ext="EXT", shots=shots)
    return Series(title="测试剧", characters=[Character(name="阿Q"), Character(name="赵太爷")],
                  episodes=[Episode(number=1, title="开端", scenes=[scene])])


def test_tts_engines_speak_chinese() -> None:
    names = available_engines()
    assert "silence" in names
    real = [n for n in names if n in ("espeak-ng", "espeakng-loader")]  # the Mandarin voices
    if not real:
        pytest.skip("no offline voice installed here")
    for name in real:
        speech = get_engine(name).synthesize("你好，世界。今天天气很好。", VoiceSpec("cmn"))
        assert speech.seconds > Fraction(1) and np.abs(speech.samples).max() > 0.05, name
    assert speakable("“你好！”「嗯」……") == "你好！嗯，"
    assert assign_voice("阿Q") == assign_voice("阿Q")
    with pytest.raises(Exception, match="unknown TTS engine"):
        get_engine("nope")
    silent = SilenceEngine().synthesize("四个汉字", VoiceSpec())
    assert silent.seconds == Fraction(1) and not silent.samples.any()
    assert set(ENGINES) >= {"espeak-ng", "espeakng-loader", "piper", "http", "silence"}


def test_card_layout_and_wrapping() -> None:
    img = render_card(CardSpec(540, 960, "第1集 场1 · 日 · 外 · 未庄", "未庄", "day", "阿Q", "很长的一句台词" * 6))
    assert img.shape == (960, 540, 3) and img.dtype == np.uint8
    # the visible label sits in the top-right corner of the UI-safe area (below the apps' top bar,
    # 10 % of the height): that region differs from a label-free card, the bar above it does not
    from pipelines.cards import LabelStyle

    plain = render_card(CardSpec(540, 960, "h", "未庄", "day", "阿Q", "台词", label=LabelStyle(enabled=False)))
    labelled = render_card(CardSpec(540, 960, "h", "未庄", "day", "阿Q", "台词"))
    corner = (slice(96, 196), slice(400, 540))
    assert np.abs(plain[corner].astype(int) - labelled[corner].astype(int)).mean() > 5
    bar = (slice(0, 96), slice(0, 540))
    assert np.array_equal(plain[bar], labelled[bar])
    from pipelines.cards import _font

    lines = wrap_text("我们先前——比你阔的多啦！你算是什么东西！", _font(40), 300)
    assert len(lines) >= 2 and all(not ln.startswith(("！", "，")) for ln in lines)


def _run_synth_cut(tmp_path: Path, tts: str = "auto") -> tuple[EpisodeRender, Path, Path, UsageStore]:
    cfg = load_config()
    usage = UsageStore(tmp_path / "usage.sqlite")
    ctx = RunContext(config=cfg, usage=usage, run_id=usage.start_run("test"))
    out = tmp_path / "synth"
    render = SynthAgent()(SynthInput(series=series(), episode=1, out_dir=out, width=180, height=320, tts=tts), ctx).output
    video, srt = tmp_path / "ep01.mp4", tmp_path / "ep01.srt"
    CutAgent()(CutInput(render=render, synth_dir=out, video_out=video, srt_out=srt, title="测试剧"), ctx)
    return render, video, srt, usage


def test_synth_and_cut_make_a_synced_labelled_episode(tmp_path: Path) -> None:
    render, video, srt, usage = _run_synth_cut(tmp_path)
    info = probe(video)
    assert info.video is not None and info.audio is not None
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    assert info.video.frames == render.total_frames == sum(s.frames for s in render.shots)
    assert info.video.duration == Fraction(render.total_frames, 25)
    label = read_label(info.metadata)
    assert label is not None and label.Label == "1" and label.ContentProducer
    cues = parse_srt(srt.read_text(encoding="utf-8"))
    assert [c[2] for c in cues] == ["我们先前——比你阔的多啦！", "你那里配姓赵！", "阿Q没有家，住在未庄的土谷祠里。"]
    # speech sits where the subtitles say: loud inside each cue, quiet in the establishing shot
    audio = read_audio(video, rate=48000)[:, 0]
    first = render.shots[0].frames
    assert np.abs(audio[: first * 1920 - 2000]).max() < 0.01
    if render.tts_engine != "silence":
        offset = 0
        for shot in render.shots:
            for line in shot.lines:
                a, b = (offset + line.start) * 1920, (offset + line.end) * 1920
                assert np.abs(audio[a:b]).max() > 0.1, line.text
            offset += shot.frames
    events = list(usage.events())
    assert {e["stage"] for e in events} == {"synth", "cut"}
    assert any(e["unit"] == "use" and e["licence"] for e in events)  # the font's licence is on record
    # shot keyframes carry the implicit label too
    from PIL import Image

    png = Image.open(tmp_path / "synth" / render.shots[1].keyframe)
    assert json.loads(png.info["AIGC"])["Label"] == "1"


def test_synth_resumes_from_cached_shots_and_rerenders_edits(tmp_path: Path) -> None:
    render, *_ = _run_synth_cut(tmp_path, tts="silence")
    shot_dir = tmp_path / "synth" / "shots"
    stamps = {p.name: p.stat().st_mtime_ns for p in shot_dir.glob("*.mp4")}
    s = series()
    s.episodes[0].scenes[0].shots[2].lines[0].text = "你怎么会姓赵！"
    cfg = load_config()
    ctx = RunContext(config=cfg)
    again = SynthAgent()(SynthInput(series=s, episode=1, out_dir=tmp_path / "synth", width=180, height=320,
                                    tts="silence"), ctx).output
    changed = {p.name for p in shot_dir.glob("*.mp4") if p.stat().st_mtime_ns != stamps[p.name]}
    assert changed == {"e01s01k02.mp4"}
    assert again.shots[2].lines[0].text == "你怎么会姓赵！"


def test_cut_refuses_missing_shots(tmp_path: Path) -> None:
    render, *_ = _run_synth_cut(tmp_path, tts="silence")
    (tmp_path / "synth" / render.shots[1].clip).unlink()
    with pytest.raises(Exception, match="missing"):
        CutAgent()(CutInput(render=render, synth_dir=tmp_path / "synth", video_out=tmp_path / "x.mp4",
                            srt_out=tmp_path / "x.srt"), RunContext(config=load_config()))


def test_cards_show_the_line_being_spoken(tmp_path: Path) -> None:
    render, video, *_ = _run_synth_cut(tmp_path, tts="silence")
    offset = render.shots[0].frames + render.shots[1].frames
    # decode to the end: PyAV can stall closing a threaded decoder mid-stream (see core.media.iter_frames)
    frames = {f.index: f.image for f in iter_frames(video, start=offset - 1)}
    # frames of the third shot differ from the second shot's (new speaker card)
    prev = frames[offset - 1]
    assert np.abs(frames[offset].astype(int) - prev.astype(int)).mean() > 3


def test_voice_wavs_carry_the_implicit_label(tmp_path: Path) -> None:
    from pipelines.label import check_media

    render, *_ = _run_synth_cut(tmp_path, tts="silence")
    report = check_media(tmp_path / "synth" / render.shots[1].audio, visible=False)
    assert report.implicit is not None and report.implicit["Label"] == "1" and report.ok
