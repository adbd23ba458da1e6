"""The animatic engine end to end: voices timed to the frame, camera moves, user backgrounds,
music ducked under dialogue, sound effects, loudness, a failing TTS line, the review gate."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from agents.base import RunContext
from agents.cut import CutAgent, CutInput
from agents.synth import (
    GAP,
    LEAD_IN,
    EpisodeRender,
    ReviewEntry,
    SynthAgent,
    SynthInput,
    load_review,
    review_shot,
)
from core.config import load_config
from core.media import iter_frames, probe, read_audio, write_wav
from core.screenplay import CameraMove, Character, Episode, Line, LineKind, Scene, Series, Shot
from pipelines.audio import integrated_loudness
from pipelines.tts import ENGINES, Speech, TTSEngine, TTSError, VoiceSpec
from tests.support.registries import registered

FPS = 25
RATE = 48000


def series(camera: CameraMove = CameraMove.PUSH_IN) -> Series:
    shots = [
        Shot(id="e01s01k00", seconds=2.0, camera=CameraMove.PAN_RIGHT, sfx=["雷声"]),
        Shot(id="e01s01k01", camera=camera, characters=["阿Q"], lines=[Line(speaker="阿Q", text="我们先前——比你阔的多啦！")]),
        Shot(id="e01s01k02", camera=CameraMove.STATIC, characters=["赵太爷"],
             lines=[Line(speaker="赵太爷", text="你那里配姓赵！"), Line(speaker="阿Q", text="我……")]),
        Shot(id="e01s02k00", camera=CameraMove.TILT_UP,
             lines=[Line(speaker="", text="阿Q没有家，住在未庄的土谷祠里。", kind=LineKind.NARRATION)]),
    ]
    scenes = [Scene(id="e01s01", place="未庄", time_of_day="day", int_ext="EXT", shots=shots[:3]),
              Scene(id="e01s02", place="土谷祠", time_of_day="night", int_ext="INT", shots=shots[3:])]
    return Series(title="测试剧", characters=[Character(name="阿Q"), Character(name="赵太爷")],
                  episodes=[Episode(number=1, title="开端", scenes=scenes)])


@pytest.fixture()
def library(tmp_path: Path) -> dict[str, Path]:
    from PIL import Image

    bg = tmp_path / "bg"
    bg.mkdir()
    yy, xx = np.mgrid[0:400, 0:300]
    img = np.stack([(xx * 255 // 299), (yy * 255 // 399), ((xx // 20 + yy // 20) % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(img).save(bg / "未庄.png")
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(RATE * 3) / RATE
    write_wav(music / "bed.wav", (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32), RATE)
    sfx = tmp_path / "sfx"
    sfx.mkdir()
    noise = np.random.default_rng(0).normal(0, 0.3, RATE // 2).astype(np.float32)
    write_wav(sfx / "雷声_thunder.wav", noise, RATE)
    return {"backgrounds": bg, "music": music, "sfx": sfx}


def _ctx(lib: dict[str, Path] | None = None) -> RunContext:
    cfg = load_config()
    if lib:
        cfg.synth.backgrounds = str(lib["backgrounds"])
        cfg.synth.music = str(lib["music"])
        cfg.synth.sfx = str(lib["sfx"])
    return RunContext(config=cfg)


def _synth(tmp_path: Path, ctx: RunContext, s: Series | None = None, tts: str = "auto") -> EpisodeRender:
    return SynthAgent()(SynthInput(series=s or series(), episode=1, out_dir=tmp_path / "synth", width=180, height=320,
                                   tts=tts), ctx).output


def test_animatic_episode_voice_timing_motion_music_and_loudness(tmp_path: Path, library: dict[str, Path]) -> None:
    ctx = _ctx(library)
    render = _synth(tmp_path, ctx)
    out = tmp_path / "synth"
    assert render.engine == "animatic" and render.cover and (out / render.cover).exists()
    assert render.music == ["bed.wav"]
    # composition timing to the frame: each line starts after the lead-in / gap, lasts its speech
    for shot in render.shots:
        cursor = LEAD_IN
        for line in shot.lines:
            assert line.start == math.ceil(cursor * FPS)
            cursor = Fraction(line.end, FPS) + GAP
        if shot.lines:
            assert shot.frames >= shot.lines[-1].end
    assert [s.motion for s in render.shots] == ["camera:pan_right", "camera:push_in", "static", "camera:tilt_up"]
    video, srt = tmp_path / "ep.mp4", tmp_path / "ep.srt"
    CutAgent()(CutInput(render=render, synth_dir=out, video_out=video, srt_out=srt, title="测试剧"), ctx)
    info = probe(video)
    assert info.video is not None and info.video.frames == render.total_frames
    audio = read_audio(video, rate=RATE)[:, 0]
    wav_total = np.concatenate([read_audio(out / s.audio, rate=RATE)[:, 0] for s in render.shots])
    assert render.loudness_lufs == pytest.approx(-16.0, abs=0.3)
    assert integrated_loudness(wav_total, RATE) == pytest.approx(render.loudness_lufs, abs=0.05)
    assert integrated_loudness(audio, RATE) == pytest.approx(render.loudness_lufs, abs=0.5)  # after AAC
    spf = RATE // FPS
    if render.tts_engine != "silence":
        # speech on every dialogue line, where the timeline says
        offset = 0
        for shot in render.shots:
            for line in shot.lines:
                seg = wav_total[(offset + line.start) * spf:(offset + line.end) * spf]
                assert np.sqrt(np.mean(seg ** 2)) > 0.03, line.text
            offset += shot.frames

        # the music bed (110 Hz) is ducked while someone speaks
        def level_110(seg: np.ndarray) -> float:
            spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
            k = int(round(110 * len(seg) / RATE))
            return float(spec[k - 2:k + 3].max() / len(seg))

        first = render.shots[0]
        quiet = wav_total[RATE // 2: RATE // 2 + RATE // 2]  # establishing shot, after the thunder
        line = render.shots[1].lines[0]
        o = first.frames
        speaking = wav_total[(o + line.start + 8) * spf:(o + line.start + 8) * spf + RATE // 2]
        assert level_110(speaking) < level_110(quiet) * 0.5  # at least 6 dB down
        # the thunder effect sits at the start of its shot
        assert np.sqrt(np.mean(wav_total[: RATE // 4] ** 2)) > np.sqrt(np.mean(quiet ** 2))
    # camera moves make frames change; the static shot repeats one frame
    f_move = [f.image.astype(int) for f in iter_frames(out / render.shots[1].clip)]
    assert np.abs(f_move[0] - f_move[-1]).mean() > 2
    # decode whole clips: PyAV can stall closing a threaded decoder mid-stream (see core.media.iter_frames)
    f_static = [f.image.astype(int) for f in iter_frames(out / render.shots[2].clip)][: render.shots[2].lines[1].start]
    assert np.abs(f_static[1] - f_static[-1]).mean() < 1
    # the user's background for 未庄 was used (its blue checker shows), the night scene is a generated plate
    kf = f_move[0]
    assert kf[..., 2].std() > 40
    # a second run reuses every shot
    again = SynthAgent()(SynthInput(series=series(), episode=1, out_dir=out, width=180, height=320), ctx)
    assert [s.key for s in again.output.shots] == [s.key for s in render.shots]


class _Flaky(TTSEngine):
    name = "flaky"
    licence = "test"

    @classmethod
    def available(cls, options: object = None) -> bool:
        return True

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        if "赵" in text:
            raise TTSError("the service dropped the connection")
        t = np.arange(int(0.8 * 16000)) / 16000
        return Speech((0.4 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000, self.name, spec.voice, text)


def test_a_shot_whose_tts_fails_is_reported_and_the_rest_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx()
    with registered(ENGINES, "flaky", _Flaky):
        render = _synth(tmp_path, ctx, tts="flaky")
    failed = [ln for s in render.shots for ln in s.lines if ln.engine == "silence"]
    assert [ln.text for ln in failed] == ["你那里配姓赵！"]
    assert any("TTS failed" in n and "e01s01k02" in n for n in render.notes)
    assert any("TTS failed" in n for n in ctx.notes)
    spoken = [ln for s in render.shots for ln in s.lines if ln.engine == "flaky"]
    assert len(spoken) == 3 and all(ln.end - ln.start == 20 for ln in spoken)  # 0.8 s at 25 fps
    # the failed line still has its reading time on screen, silent
    shot = render.shots[2]
    wav = read_audio(tmp_path / "synth" / shot.audio, rate=RATE)[:, 0]
    bad = shot.lines[0]
    assert np.abs(wav[bad.start * 1920 + 960:bad.end * 1920 - 960]).max() < 1e-3
    assert bad.end - bad.start == 44  # 7 characters at 4 a second = 1.75 s


def test_review_gate_approve_edit_and_regenerate(tmp_path: Path) -> None:
    ctx = _ctx()
    render = _synth(tmp_path, ctx, tts="silence")
    out = tmp_path / "synth"
    assert render.unapproved() == [s.id for s in render.shots]
    mtime = (out / render.shots[1].clip).stat().st_mtime_ns
    review_shot(out, "e01s01k01", "approve")
    saved = EpisodeRender.load(out / "render.json")
    assert saved.shots[1].review == "approved" and (out / saved.shots[1].clip).stat().st_mtime_ns == mtime
    review_shot(out, "e01s01k02", "prompt", "赵太爷怒目而视，祠堂")
    review_shot(out, "e01s01k02", "regenerate")
    state = load_review(out)
    assert state["e01s01k02"] == ReviewEntry(status="pending", prompt="赵太爷怒目而视，祠堂", seed_offset=1)
    assert state["e01s01k02"].to_json() == {"status": "pending", "prompt": "赵太爷怒目而视，祠堂", "seed_offset": 1}
    again = _synth(tmp_path, ctx, tts="silence")
    assert again.shots[1].review == "approved" and again.shots[2].review == "pending"
    with pytest.raises(Exception, match="not in episode"):
        review_shot(out, "nope", "approve")
    with pytest.raises(Exception, match="unknown review action"):
        review_shot(out, "e01s01k01", "delete")
    for s in range(len(again.shots)):
        review_shot(out, again.shots[s].id, "approve")
    assert EpisodeRender.load(out / "render.json").unapproved() == []
    assert json.loads((out / "review.json").read_text(encoding="utf-8"))["shots"]["e01s01k00"]["status"] == "approved"
