from __future__ import annotations

import resource
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import CorruptMediaError, InputError, MediaError, UnsupportedMediaError
from core.media import (
    VideoWriter,
    concat,
    even_size,
    iter_frames,
    probe,
    read_audio,
    resample_audio,
    samples_for_frames,
    trim,
    write_wav,
)
from core.streams import Prefetch
from tests.media_utils import H, W, index_frame, make_clip, read_index


def test_writer_probe_round_trip_keeps_audio_in_sync(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", 60, Fraction(30000, 1001), metadata={"AIGC": '{"Label":"1"}'})
    info = probe(clip)
    assert info.video is not None and info.audio is not None
    assert info.video.fps == Fraction(30000, 1001)
    assert (info.video.width, info.video.height, info.video.frames) == (W, H, 60)
    assert info.video.codec == "h264" and info.video.pix_fmt == "yuv420p"
    assert info.metadata["AIGC"] == '{"Label":"1"}'
    audio = read_audio(clip, rate=48000)
    want = samples_for_frames(60, Fraction(30000, 1001), 48000)
    # AAC adds no more than one frame (1024 samples) of padding; never less audio than picture
    assert want <= len(audio) <= want + 1024
    frames = list(iter_frames(clip))
    assert [read_index(f.image) for f in frames] == list(range(60))
    assert [f.index for f in frames] == list(range(60))
    assert frames[30].time == Fraction(30) / Fraction(30000, 1001)


def test_iter_frames_range_and_resize(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", 50)
    got = [(f.index, read_index(f.image)) for f in iter_frames(clip, start=23, end=31)]
    assert got == [(i, i) for i in range(23, 31)]
    small = next(iter(iter_frames(clip, size=(64, 36))))
    assert small.image.shape == (36, 64, 3)


def test_writer_rejects_odd_sizes_and_mismatched_frames(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="even"):
        VideoWriter(tmp_path / "x.mp4", 101, 50, 25)
    assert even_size(101, 51) == (100, 50)
    w = VideoWriter(tmp_path / "y.mp4", 64, 32, 25)
    with pytest.raises(InputError, match="does not match"):
        w.write(np.zeros((10, 10, 3), np.uint8))
    w.abort()
    assert not (tmp_path / "y.mp4").exists()


def test_h265_encode(tmp_path: Path) -> None:
    out = tmp_path / "h.mp4"
    with VideoWriter(out, 64, 48, 25, codec="h265", crf=28) as w:
        for i in range(10):
            w.write(index_frame(i, 64, 48))
    assert probe(out).video.codec == "hevc"  # type: ignore[union-attr]


@pytest.mark.parametrize("start,end", [(12, 30), (13, 29), (0, 7), (40, 50)])
def test_trim_is_frame_accurate(tmp_path: Path, start: int, end: int) -> None:
    clip = make_clip(tmp_path / "a.mp4", 50)
    res = trim(clip, tmp_path / "t.mp4", start, end)
    frames = [read_index(f.image) for f in iter_frames(res.path)]
    assert frames == list(range(start, end)), res.mode
    assert res.frames == end - start
    audio = read_audio(res.path)
    want = samples_for_frames(end - start, Fraction(25), 48000)
    assert want <= len(audio) <= want + 1024


def test_trim_copy_modes(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", 48, gop=12, metadata={"AIGC": '{"Label":"1"}'})
    from core.media import _keyframe_indices

    keys, _ = _keyframe_indices(clip, Fraction(25), probe(clip).video.time_base)  # type: ignore[union-attr]
    k = next(k for k in keys if k > 0)
    res = trim(clip, tmp_path / "c.mp4", k, 48)
    assert res.mode == "copy"
    assert [read_index(f.image) for f in iter_frames(res.path)] == list(range(k, 48))
    assert probe(res.path).metadata.get("AIGC") == '{"Label":"1"}'
    with pytest.raises(MediaError, match="keyframe"):
        trim(clip, tmp_path / "d.mp4", k + 1, 48, copy="always")
    assert trim(clip, tmp_path / "e.mp4", k, 48, copy="never").mode == "encode"


def test_concat_copy_and_reencode(tmp_path: Path) -> None:
    a = make_clip(tmp_path / "a.mp4", 30)
    b = make_clip(tmp_path / "b.mp4", 20, offset=30)
    res = concat([a, b], tmp_path / "ab.mp4", metadata={"title": "x"})
    assert res.mode == "copy" and res.frames == 50
    info = probe(res.path)
    assert info.video.frames == 50 and info.video.duration == Fraction(2)  # type: ignore[union-attr]
    assert [read_index(f.image) for f in iter_frames(res.path)] == list(range(50))
    audio = read_audio(res.path)
    assert samples_for_frames(50, Fraction(25), 48000) <= len(audio) <= samples_for_frames(50, Fraction(25), 48000) + 1024
    # a clip encoded with other settings forces a re-encode, still frame-exact
    c = tmp_path / "c.mp4"
    with VideoWriter(c, W, H, 25, crf=30, preset="ultrafast") as w:
        for i in range(10):
            w.write(index_frame(50 + i))
    res2 = concat([res.path, c], tmp_path / "abc.mp4")
    assert res2.mode == "encode" and res2.frames == 60
    assert [read_index(f.image) for f in iter_frames(res2.path)] == list(range(60))
    with pytest.raises(MediaError, match="stream copy"):
        concat([res.path, c], tmp_path / "z.mp4", copy="always")


def test_concat_audio_from_wavs_is_sample_exact(tmp_path: Path) -> None:
    a = make_clip(tmp_path / "a.mp4", 25, audio=True)
    b = make_clip(tmp_path / "b.mp4", 25, offset=25, audio=True)
    wa = write_wav(tmp_path / "a.wav", np.full(48000, 0.5, np.float32), 48000)
    wb = write_wav(tmp_path / "b.wav", np.full(48000, -0.5, np.float32), 48000)
    res = concat([a, b], tmp_path / "ab.mp4", audio_from=[wa, wb], audio_rate=48000)
    audio = read_audio(res.path)[:, 0]
    # the sign flips at exactly 1 s (sample 48000), give or take the AAC transition
    assert audio[10000:40000].mean() > 0.4 and audio[58000:90000].mean() < -0.4


def test_autorotate_matches_ffmpeg(tmp_path: Path) -> None:
    import av

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg program not installed")
    path = tmp_path / "rot.mp4"
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
    s.set_display_rotation(90)
    img = np.zeros((32, 64, 3), np.uint8)
    img[:8, :16] = 255  # a bright block in the top-left corner
    for _ in range(5):
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    info = probe(path)
    assert info.video.rotation == 90 and info.video.display_size == (32, 64)  # type: ignore[union-attr]
    ours = next(iter(iter_frames(path))).image
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(ours.shape)
    assert ours.shape == (64, 32, 3)
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 3


def test_bad_files_give_clear_errors_fast(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(CorruptMediaError, match="empty"):
        probe(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptMediaError):
        probe(junk)
    text = tmp_path / "novel.mp4"
    text.write_text("第一章 这不是视频", encoding="utf-8")
    with pytest.raises(CorruptMediaError):
        list(iter_frames(text))
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    # truncated: the header survives, most of the data does not (moov at the front: faststart)
    clip = make_clip(tmp_path / "a.mp4", 50)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    try:
        frames = list(iter_frames(cut))
        assert len(frames) < 50
    except CorruptMediaError:
        pass
    wav = write_wav(tmp_path / "a.wav", np.zeros(4800, np.float32), 48000)
    with pytest.raises(UnsupportedMediaError, match="no video"):
        list(iter_frames(wav))


def test_resample_and_wav(tmp_path: Path) -> None:
    x = np.sin(np.arange(22050) / 22050 * 2 * np.pi * 440).astype(np.float32)
    y = resample_audio(x, 22050, 48000)
    assert len(y) == 48000 and 0.9 < np.abs(y).max() < 1.05
    back = read_audio(write_wav(tmp_path / "t.wav", y, 48000))
    assert back.shape == (48000, 1)


def test_prefetch_propagates_errors_and_stops() -> None:
    def boom():  # type: ignore[no-untyped-def]
        yield 1
        raise ValueError("decoder broke")

    with pytest.raises(ValueError, match="decoder broke"):
        list(Prefetch(boom, maxsize=1))
    it: Any = iter(Prefetch(lambda: iter(range(10_000)), maxsize=2))
    assert next(it) == 0
    it.close()  # consumer leaves early: producer must not hang


def test_real_footage_megamind(opencv_data: Path, tmp_path: Path) -> None:
    mega = opencv_data / "Megamind.avi"
    info = probe(mega)
    assert info.video is not None
    assert info.video.fps == Fraction(2997, 125)  # the AVI header says 23.976 exactly, not 24000/1001
    assert (info.video.width, info.video.height) == (720, 528)
    frames = list(iter_frames(mega, start=95, end=105, size=(360, 264)))
    assert [f.index for f in frames] == list(range(95, 105))
    res = trim(mega, tmp_path / "m.mp4", 90, 110)
    assert res.frames == 20 and probe(res.path).video.frames == 20  # type: ignore[union-attr]
    # the trimmed picture is the same picture (lossy re-encode: small error)
    a = next(iter(iter_frames(mega, start=100, end=101))).image.astype(int)
    b = next(iter(iter_frames(res.path, start=10, end=11))).image.astype(int)
    assert np.abs(a - b).mean() < 6


def test_memory_stays_flat_on_long_real_video(opencv_data: Path) -> None:
    vtest = opencv_data / "vtest.avi"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = 0
    for _ in iter_frames(vtest, size=(192, 144)):
        count += 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert count > 700
    assert (after - before) < 150 * 1024  # KiB: a flat stream, not the whole video in memory


def test_tensor_stream_round_trip(tmp_path: Path) -> None:
    import torch

    from core.media import iter_tensors, tensor_to_frames

    clip = make_clip(tmp_path / "a.mp4", 10, audio=False)
    seen = []
    for indices, batch in iter_tensors(clip, batch=4):
        assert batch.shape[1:] == (3, H, W) and batch.dtype == torch.float32
        assert batch.is_contiguous(memory_format=torch.channels_last)
        seen += [read_index(img) for img in tensor_to_frames(batch)]
        assert len(indices) == batch.shape[0]
    assert seen == list(range(10))


def test_colours_survive_encode_and_ffmpeg_agrees(tmp_path: Path) -> None:
    out = tmp_path / "c.mp4"
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 50, 120
    with VideoWriter(out, 64, 64, 25, crf=10) as w:
        for _ in range(3):
            w.write(img)
    ours = next(iter(iter_frames(out))).image[32, 32].astype(int)
    assert np.abs(ours - [200, 50, 120]).max() <= 4
    if shutil.which("ffprobe"):
        tags = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=color_space,color_range", str(out)],
                              capture_output=True, text=True).stdout
        assert "bt709" in tags and "tv" in tags
