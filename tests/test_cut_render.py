"""Timeline rendering (stream copy and re-encode, to the frame), silence trimming, subtitles."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from core.aigc import read_label
from core.errors import InputError
from core.media import VideoWriter, iter_frames, probe, read_audio
from core.timeline import Caption, Clip, MediaRef, Timeline, Track, Transition
from pipelines.render import mix_audio, render_timeline
from pipelines.silence import SilenceParams, cut_silence, speech_runs
from pipelines.subtitles import Cue, add_soft_subtitles, align_to_speech, ass_text, parse_ass_events
from tests.media_utils import H, W, make_clip, read_index, tone

FPS = Fraction(25)


def media(path: Path, frames: int, audio: bool = True) -> MediaRef:
    return MediaRef(str(path), FPS, frames, W, H, True, audio)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("clips")
    a = make_clip(d / "a.mp4", 48, offset=0)
    b = make_clip(d / "b.mp4", 48, offset=100)
    return a, b


def indices(path: Path) -> list[int]:
    return [read_index(f.image) for f in iter_frames(path)]


def test_stream_copy_when_cuts_fall_on_keyframes(clips: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = clips
    ma, mb = media(a, 48), media(b, 48)
    from core.media import _keyframe_indices

    ka = _keyframe_indices(a, FPS, Fraction(1, 12800))[0]
    kb = _keyframe_indices(b, FPS, Fraction(1, 12800))[0]
    # with B-frames both ends of a copied piece must be keyframes
    la, lb = ka[3] - ka[1], kb[2] - kb[1]
    v = Track("video", "V1", (Clip(ma, 0, la, ka[1]), Clip(mb, la, lb, kb[1])))
    tl = Timeline("t", FPS, W, H, (v, Track("audio", "A1", v.clips)))
    res = render_timeline(tl, tmp_path / "copy.mp4", label=False)
    assert res.mode == "copy" and res.frames == la + lb, res.notes
    assert indices(res.path) == list(range(ka[1], ka[3])) + list(range(100 + kb[1], 100 + kb[2]))
    info = probe(res.path)
    assert read_label(info.metadata) is not None  # the implicit tag is written on copies too
    assert len(read_audio(res.path, rate=48000)) == (la + lb) * 48000 // 25
    # a cut off the keyframe grid re-encodes, still to the frame
    v2 = Track("video", "V1", (Clip(ma, 0, 10, 5), Clip(mb, 10, 7, 3)))
    res2 = render_timeline(Timeline("t", FPS, W, H, (v2,)), tmp_path / "enc.mp4", label=False)
    assert res2.mode == "encode" and "keyframe" in res2.notes[0]
    assert indices(res2.path) == list(range(5, 15)) + list(range(103, 110))


def test_dissolve_fades_and_label(clips: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = clips
    ma, mb = media(a, 48), media(b, 48)
    v = Track("video", "V1", (Clip(ma, 0, 20, 10), Clip(mb, 20, 20, 10)),
              (Transition("dissolve", 20, 4, 4), Transition("fade_in", 0, 0, 5), Transition("fade_out", 40, 5, 0)))
    tl = Timeline("t", FPS, W, H, (v,))
    res = render_timeline(tl, tmp_path / "dis.mp4", label=True)
    assert res.mode == "encode" and res.frames == 40
    frames = [f.image for f in iter_frames(res.path)]
    idx = [read_index(f) for f in frames]
    assert idx[5:16] == list(range(15, 26))  # A untouched before the dissolve
    assert idx[24:35] == list(range(114, 125))  # B untouched after it
    assert frames[0].mean() < frames[6].mean() * 0.4  # fading in from black
    assert frames[39].mean() < frames[30].mean() * 0.4  # fading out
    # inside the dissolve the picture is a mix: neither A's nor B's frame
    mid = frames[20].astype(float)
    assert 20 < np.abs(mid - frames[14].astype(float)).mean() and 20 < np.abs(mid - frames[26].astype(float)).mean()
    assert read_label(probe(res.path).metadata) is not None
    with pytest.raises(InputError, match="empty"):
        render_timeline(Timeline("e", FPS, W, H, ()), tmp_path / "e.mp4")


def test_smart_render_encodes_only_the_transitions(tmp_path: Path) -> None:
    from core.media import _keyframe_indices
    from core.timeline import cut_keyframes

    # shots made the way synth makes them: keyframes where the rough cut's transitions end
    a = make_clip(tmp_path / "a.mp4", 40, offset=0, gop=None, keyframes=cut_keyframes(40, head=5, tail=8))
    b = make_clip(tmp_path / "b.mp4", 40, offset=100, gop=None, keyframes=cut_keyframes(40, head=8, tail=5))
    assert _keyframe_indices(a, FPS, Fraction(1, 12800))[0] == [0, 5, 32]
    ma, mb = media(a, 40), media(b, 40)
    # A: source 0..35 on the timeline, its last 4 frames under the dissolve; B from its frame 4
    v = Track("video", "V1", (Clip(ma, 0, 36, 0), Clip(mb, 36, 36, 4)),
              (Transition("dissolve", 36, 4, 4), Transition("fade_in", 0, 0, 5), Transition("fade_out", 72, 5, 0)))
    tl = Timeline("t", FPS, W, H, (v, Track("audio", "A1", v.clips)))
    res = render_timeline(tl, tmp_path / "smart.mp4", label=False)
    assert res.mode == "smart" and res.frames == 72, res.notes
    assert "54 frames copied, 18 encoded in 3 pieces" in res.notes[0]  # 5 + 8 + 5 frames under transitions
    out = [f.image for f in iter_frames(res.path)]
    idx = [read_index(f) for f in out]
    assert idx[5:32] == list(range(5, 32)) and idx[40:67] == list(range(108, 135))
    # copied frames are the clips' own pictures, bit for bit
    src_a = [f.image for f in iter_frames(a)]
    src_b = [f.image for f in iter_frames(b)]
    assert all(np.array_equal(out[t], src_a[t]) for t in range(5, 32))
    assert all(np.array_equal(out[t], src_b[t - 32]) for t in range(40, 67))
    # encoded ones: a fade from black, the dissolve's mix, a fade to black
    assert out[0].mean() < out[6].mean() * 0.4 and out[71].mean() < out[60].mean() * 0.4
    mid = out[36].astype(float)
    assert 20 < np.abs(mid - out[30].astype(float)).mean() and 20 < np.abs(mid - out[42].astype(float)).mean()
    sound = read_audio(res.path, rate=48000)
    assert len(sound) == 72 * 48000 // 25
    mixed = mix_audio(tl, 48000)  # the sound is the timeline's mix, in place (AAC-coded)
    assert np.corrcoef(sound.reshape(-1), mixed.reshape(-1))[0, 1] > 0.95
    assert read_label(probe(res.path).metadata) is not None


def test_smart_render_falls_back_when_the_clips_settings_cannot_be_matched(tmp_path: Path) -> None:
    from core.timeline import cut_keyframes

    # preset "medium" writes other codec headers (more reference frames) than the render's veryfast
    a = make_clip(tmp_path / "a.mp4", 30, gop=None, keyframes=cut_keyframes(30, tail=6), preset="medium")
    b = make_clip(tmp_path / "b.mp4", 30, offset=100, gop=None, keyframes=cut_keyframes(30, head=6), preset="medium")
    v = Track("video", "V1", (Clip(media(a, 30), 0, 27, 0), Clip(media(b, 30), 27, 27, 3)),
              (Transition("dissolve", 27, 3, 3),))
    res = render_timeline(Timeline("t", FPS, W, H, (v,)), tmp_path / "out.mp4", label=False)
    assert res.mode == "encode" and "codec headers" in res.notes[0], res.notes
    assert [read_index(f.image) for f in iter_frames(res.path)][:20] == list(range(20))


def test_ducked_music_and_exact_audio_length(clips: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = clips
    rate = 48000
    from core.media import write_wav

    music = write_wav(tmp_path / "music.wav", tone(rate * 3, rate, freq=220.0), rate)
    mm = MediaRef(str(music), FPS, 75, 0, 0, False, True)
    env = ((0, 0.0), (10, 0.0), (12, -20.0), (30, -20.0), (32, 0.0))
    tl = Timeline("t", FPS, W, H, (Track("video", "V1", (Clip(media(a, 48), 0, 40),)),
                                  Track("audio", "M", (Clip(mm, 0, 40, envelope=env),), role="music")))
    mix = mix_audio(tl, rate)[:, 0]
    assert len(mix) == 40 * rate // 25
    loud = np.sqrt((mix[: 10 * 1920] ** 2).mean())
    quiet = np.sqrt((mix[13 * 1920:29 * 1920] ** 2).mean())
    assert quiet < loud / 8  # -20 dB is a tenth
    out = render_timeline(tl, tmp_path / "duck.mp4", label=False)
    assert len(read_audio(out.path, rate=rate)) == len(mix)


def test_burned_captions_and_soft_subtitles(clips: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = clips
    big = tmp_path / "big.mp4"
    with VideoWriter(big, 320, 180, FPS, audio_rate=48000) as w:
        for _ in range(30):
            w.write(np.full((180, 320, 3), 90, np.uint8))
    m = MediaRef(str(big), FPS, 30, 320, 180)
    tl = Timeline("t", FPS, 320, 180, (Track("video", "V1", (Clip(m, 0, 30),)),),
                  captions=(Caption(5, 20, "你好，世界"),))
    res = render_timeline(tl, tmp_path / "cap.mp4", label=False, burn_captions=True)
    frames = [f.image for f in iter_frames(res.path)]
    bottom = slice(100, 150)
    assert frames[10][bottom].std() > 10 and frames[25][bottom].std() < 5
    cues = [Cue(5, 20, "你好，世界", "阿Q"), Cue(22, 29, "旁白的话")]
    soft = add_soft_subtitles(res.path, tmp_path / "soft.mp4", cues, FPS)
    import av

    with av.open(str(soft)) as c:
        assert sorted(s.type for s in c.streams) == ["subtitle", "video"]  # the timeline had no sound
        texts = [t for p in c.demux(c.streams.subtitles[0]) if p.size and (t := bytes(p)[2:].decode())]  # gaps: empty
    assert texts == ["你好，世界", "旁白的话"]
    assert len(list(iter_frames(soft))) == 30
    ass = ass_text(cues, FPS, 1080, 1920, title="测试")
    ev = parse_ass_events(ass)
    assert ev[0] == ("0:00:00.20", "0:00:00.80", "Dialogue", "你好，世界")
    assert ev[1][2] == "Narration" and "PlayResY: 1920" in ass


def test_silence_is_cut_with_margins(tmp_path: Path) -> None:
    rate, fps = 48000, FPS
    path = tmp_path / "talk.mp4"
    speech = [(0, 25), (60, 90), (150, 160)]  # frames with sound
    with VideoWriter(path, W, H, fps, audio_rate=rate) as w:
        from tests.media_utils import index_frame

        for i in range(175):
            w.write(index_frame(i))
            on = any(a <= i < b for a, b in speech)
            w.write_audio(tone(1920, rate, i * 1920) if on else np.zeros(1920, np.float32))
    p = SilenceParams(threshold_db=-35, min_silence=0.5, margin=0.2)
    res = cut_silence(path, tmp_path / "cut.mp4", p)
    assert res.kept == [(0, 30), (55, 95), (145, 165)]  # 5 frames (0.2 s) of margin each side
    assert res.frames_kept == 30 + 40 + 20
    assert indices(res.path)[:3] == [0, 1, 2] and indices(res.path)[30] == 55
    assert read_label(probe(res.path).metadata) is None  # footage a person shot is not tagged AI
    loud = np.array([-10.0] * 5 + [-60.0] * 10 + [-10.0] * 5)
    assert speech_runs(loud, fps, SilenceParams(min_silence=1.0, margin=0)) == [(0, 20)]  # a short pause is kept


def test_video_without_audio_and_bad_inputs(tmp_path: Path) -> None:
    silent = make_clip(tmp_path / "mute.mp4", 24, audio=False)
    with pytest.raises(InputError, match="no audio"):
        cut_silence(silent, tmp_path / "x.mp4")
    tl = Timeline("t", FPS, W, H, (Track("video", "V1", (Clip(media(silent, 24, audio=False), 0, 24),)),
                                   Track("audio", "A1", (Clip(media(silent, 24, audio=False), 0, 24),))))
    res = render_timeline(tl, tmp_path / "mute_out.mp4", label=False)
    assert res.frames == 24 and np.abs(read_audio(res.path)).max() == 0  # silence, not an error
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    tl_bad = Timeline("t", FPS, W, H, (Track("video", "V1", (Clip(MediaRef(str(bad), FPS, 10), 0, 10),)),))
    with pytest.raises(Exception, match="bad.mp4"):
        render_timeline(tl_bad, tmp_path / "y.mp4", label=False)


def test_subtitles_aligned_to_speech() -> None:
    lines = [("阿Q", "我们先前比你阔的多啦"), ("赵太爷", "你那里配姓赵")]
    assert align_to_speech(lines, [(10, 40), (60, 80)]) == [Cue(10, 40, lines[0][1], "阿Q"), Cue(60, 80, lines[1][1], "赵太爷")]
    cues = align_to_speech(lines, [(0, 100)])
    assert cues[0].start == 0 and cues[-1].end == 100 and cues[0].end == cues[1].start
