"""Hardening of enhance, label burn and detection (issue "Hardening"): bad outputs, truncated and
variable-frame-rate inputs, killed runs, full disks. Each test is one recipe of the issue."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.errors import CorruptMediaError, DiskFullError
from core.media import VideoWriter, check_complete, iter_frames, probe, strict_media
from tests.media_utils import index_frame, make_clip
from tests.support.fs import fill, tmpfs
from ui.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "in.mp4", 30)


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "reelforge: error:" in err, err
    for word in words:
        assert word in err, err
    return err


# --- 10. outputs that cannot be written, checked before the work ---------------------------------
@pytest.mark.parametrize("name,word", [("out.xyz", "not a video container"), ("out.webm", "WebM"),
                                       ("outnoext", "no suffix"), ("outdir/", "is a folder")])
def test_enhance_to_an_unusable_output_name(tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str],
                                            name: str, word: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outdir").mkdir()
    started: list[int] = []
    import agents.enhance

    monkeypatch.setattr(agents.enhance, "process_video", lambda *a, **k: started.append(1))
    _fails_cleanly(capsys, ["-q", "enhance", str(clip), str(tmp_path / name), "--model", "classic"], word)
    assert not started  # refused before any frame was upscaled


def test_enhance_still_image_to_video_name_fails_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "still.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png)
    _fails_cleanly(capsys, ["-q", "enhance", str(png), str(tmp_path / "out.mp4"), "--model", "classic"],
                   "still image", ".png")
    assert not (tmp_path / "out.mp4").exists()


def test_enhance_into_a_read_only_folder_fails_before_the_work(tmp_path: Path, clip: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    with tmpfs(ro, "1m", read_only=True):
        err = _fails_cleanly(capsys, ["-q", "enhance", str(clip), str(ro / "out.mp4"), "--model", "classic"],
                             "Read-only file system", str(ro))
        assert "cleanup" not in err.lower()


def test_enhance_short_of_disk_space_is_refused_up_front(tmp_path: Path, clip: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "small", "64k") as disk:
        big = make_clip(tmp_path / "big.mp4", 250)
        _fails_cleanly(capsys, ["-q", "enhance", str(big), str(disk / "out.mp4"), "--scale", "4", "--model",
                                "classic"], "free", "needs about")
        assert not list(disk.iterdir())


def test_video_writer_on_a_full_disk_names_the_output_and_leaves_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "256k") as disk:
        fill(disk, leave=16 * 1024)
        out = disk / "x.mp4"
        with pytest.raises(DiskFullError) as e:
            with VideoWriter(out, 320, 240, 25, crf=0, audio_rate=48000) as w:
                rng = np.random.default_rng(0)
                for _ in range(100):
                    w.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        assert str(out) in e.value.message and "disk full" in e.value.message
        assert e.value.__context__ is None or "During handling" not in str(e.value)
        assert sorted(p.name for p in disk.iterdir()) == [".filler"]


# --- 11. input = output, killed and interrupted runs ---------------------------------------------
def test_label_burn_refuses_input_as_output_like_enhance(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = clip.read_bytes()
    err_burn = _fails_cleanly(capsys, ["-q", "label", "burn", str(clip), str(clip)], "is the input itself")
    err_enh = _fails_cleanly(capsys, ["-q", "enhance", str(clip), str(clip)], "is the input itself")
    assert err_burn.splitlines()[0].split(":", 2)[2] == err_enh.splitlines()[0].split(":", 2)[2]
    assert clip.read_bytes() == before


def _enhance_proc(src: Path, dst: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "ui.cli", "-q", "enhance", str(src), str(dst), "--scale", "4", "--model", "classic"]
    return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, REELFORGE_LOG="WARNING"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_part(folder: Path, proc: subprocess.Popen[str]) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        parts = [p for p in folder.iterdir() if ".part" in p.name]
        if parts and parts[0].stat().st_size > 0:
            return parts[0]
        time.sleep(0.02)
    raise AssertionError(f"no part file appeared (rc {proc.poll()})")


def test_killed_enhance_leaves_no_part_file_behind(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "long.mp4", 400)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _enhance_proc(src, out_dir / "x4.mp4")
    part = _wait_for_part(out_dir, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part.exists()  # SIGKILL cannot be caught: the next run that writes into the folder cleans up
    done = subprocess.run([sys.executable, "-m", "ui.cli", "-q", "enhance", str(make_clip(tmp_path / "s.mp4", 5)),
                           str(out_dir / "other.mp4"), "--scale", "2", "--model", "classic"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["other.mp4"]


def test_interrupted_enhance_speaks_of_the_output_not_a_project(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "long.mp4", 400)
    proc = _enhance_proc(src, tmp_path / "x4.mp4")
    _wait_for_part(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "project" not in err.lower() and "Traceback" not in err
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name] and not (tmp_path / "x4.mp4").exists()


# --- 7. a truncated "faststart" MP4 ----------------------------------------------------------------
@pytest.fixture()
def truncated(tmp_path: Path) -> Path:
    full = make_clip(tmp_path / "full.mp4", 75)  # the index (moov) comes first: it survives the cut
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_truncated_faststart_mp4_is_reported(truncated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             caplog: pytest.LogCaptureFixture) -> None:
    assert probe(truncated).video.frames == 75  # type: ignore[union-attr]
    message = check_complete(truncated)
    assert message is not None and "75 frames" in message
    with pytest.raises(CorruptMediaError):
        with strict_media():
            list(iter_frames(truncated))
    # enhance: a warning in the report, or an error before the work with --strict
    out = tmp_path / "out.mp4"
    assert main(["-q", "enhance", str(truncated), str(out), "--scale", "1"]) == 0
    assert "truncated" in caplog.text
    _fails_cleanly(capsys, ["-q", "enhance", str(truncated), str(tmp_path / "o2.mp4"), "--scale", "1", "--strict"],
                   "truncated", "75 frames")
    assert not (tmp_path / "o2.mp4").exists()
    # detection: warns; --strict fails
    caplog.clear()
    assert main(["-q", "cut", "detect", str(truncated)]) == 0
    assert "truncated" in caplog.text
    _fails_cleanly(capsys, ["-q", "cut", "detect", str(truncated), "--strict"], "truncated")


def test_complete_files_raise_no_warning(clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert check_complete(clip) is None
    with strict_media():
        assert len(list(iter_frames(clip))) == 30
    assert "truncated" not in caplog.text


# --- 11. variable frame rate keeps its timestamps --------------------------------------------------
def test_vfr_input_keeps_source_timestamps(tmp_path: Path) -> None:
    src = tmp_path / "vfr.mp4"
    times: list[Fraction] = []
    t = Fraction(0)
    with VideoWriter(src, 128, 72, 25, time_base=Fraction(1, 1000), audio_rate=48000) as w:
        for i in range(50):
            w.write(index_frame(i), t)
            times.append(t)
            t += Fraction(1, 25) if i % 3 else Fraction(3, 50)  # 40 or 60 ms: a phone's irregular clock
        w.write_audio(np.zeros(48000 * 3, np.float32))
    assert probe(src).video.variable_fps  # type: ignore[union-attr]
    out = tmp_path / "out.mp4"
    assert main(["-q", "enhance", str(src), str(out), "--scale", "1"]) == 0
    got = [f.time for f in iter_frames(out)]
    assert len(got) == 50
    assert max(abs(a - b) for a, b in zip(got, times, strict=True)) <= Fraction(1, 1000)
    info = probe(out)
    assert info.audio is not None and abs(float(info.audio.duration or 0) - float(info.video.duration or 0)) < 0.03  # type: ignore[union-attr]


def test_disk_full_simulated_in_the_encoder_is_one_line(tmp_path: Path, clip: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Portable ENOSPC (no mount needed): the muxer's write fails as on a full disk."""
    import av

    real_open = av.open

    class Full:
        def __init__(self, c: object) -> None:
            self.c = c

        def __getattr__(self, name: str) -> object:
            return getattr(self.c, name)

        def mux(self, packet: object) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_open(file: Any, mode: Any = "r", *a: Any, **k: Any) -> Any:
        c = real_open(file, mode, *a, **k)
        return Full(c) if mode == "w" else c

    monkeypatch.setattr(av, "open", full_open)
    out = tmp_path / "out.mp4"
    err = _fails_cleanly(capsys, ["-q", "enhance", str(clip), str(out), "--scale", "2", "--model", "classic"],
                         "disk full", str(out))
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_cut_silence_and_render_check_the_output_first(tmp_path: Path, clip: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(capsys, ["-q", "cut", "silence", str(clip), str(tmp_path / "o.webm")], "WebM")
    _fails_cleanly(capsys, ["-q", "cut", "silence", str(clip), str(clip)], "is the input itself")
    timeline = tmp_path / "t.json"
    timeline.write_text("{}", encoding="utf-8")
    _fails_cleanly(capsys, ["-q", "cut", "render", str(timeline), str(tmp_path / "outdir") + "/"], "is a folder")
