"""AIGC labels: the visible mark is burned in and found again, the metadata survives re-encodes."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.aigc import make_label, read_label
from core.media import VideoWriter, probe, write_wav
from pipelines.cards import LabelStyle, draw_label
from pipelines.label import LabelOverlay, check_media, label_video, write_png_label, write_wav_label

ROOT = Path(__file__).resolve().parents[1]


def textured(i: int, w: int = 320, h: int = 180) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3 + i * 5) % 256, (yy * 2 + i * 3) % 256, ((xx + yy) // 2) % 256], axis=-1)
    return img.astype(np.uint8)


def plain_video(path: Path, frames: int = 60, fps: Fraction = Fraction(25)) -> Path:
    with VideoWriter(path, 320, 180, fps, crf=18, audio_rate=48000) as w:
        for i in range(frames):
            w.write(textured(i))
        w.write_audio(np.zeros(int(frames / fps * 48000), np.float32))
    return path


def test_overlay_equals_the_card_label() -> None:
    style = LabelStyle(position="bottom-left", opacity=0.7)
    frame = textured(3)
    ours = LabelOverlay.build(320, 180, style).apply(frame)
    img = Image.fromarray(frame)
    draw_label(img, style)
    assert np.abs(ours.astype(int) - np.asarray(img).astype(int)).max() <= 2
    assert not np.array_equal(ours, frame)


def test_burn_then_check_and_survive_an_upscale(tmp_path: Path) -> None:
    src = plain_video(tmp_path / "user.mp4")
    before = check_media(src)
    assert before.implicit is None and before.visible is False and not before.ok
    label = make_label("测试工作室", "user.mp4")
    out = label_video(src, tmp_path / "labelled.mp4", label=label)
    report = check_media(out)
    assert report.ok and report.visible and report.corner == "top-right"
    assert report.implicit is not None and report.implicit["ContentProducer"] == "测试工作室"
    assert report.frames_checked == 50 and report.frames_marked >= 45
    # a later re-encode (the enhance agent's 2x upscale) keeps both labels
    from agents.base import RunContext
    from agents.enhance import EnhanceAgent, EnhanceInput
    from core.config import load_config

    res = EnhanceAgent()(EnhanceInput(out, tmp_path / "up.mp4", scale=2), RunContext(config=load_config()))
    up = check_media(res.output.path)
    assert up.implicit == report.implicit and up.visible, up.notes


def test_mark_only_in_the_opening_is_enough_but_late_is_not(tmp_path: Path) -> None:
    src = plain_video(tmp_path / "user.mp4", frames=100)
    opening = label_video(src, tmp_path / "open.mp4", seconds=2.0)
    assert check_media(opening).visible
    assert check_media(opening, seconds=3.0).visible is False  # only 2 s were marked


def test_cli_label_check_exit_codes(tmp_path: Path) -> None:
    src = plain_video(tmp_path / "user.mp4", frames=30)
    good = label_video(src, tmp_path / "good.mp4")
    run = [sys.executable, "-m", "ui.cli", "label", "check"]
    ok = subprocess.run(run + [str(good)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert '"ok": true' in ok.stdout and "AIGC" not in ok.stderr
    bad = subprocess.run(run + [str(src)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 1 and "显式标识" in bad.stderr


def test_keyframe_and_tts_audio_carry_the_implicit_label(tmp_path: Path) -> None:
    label = make_label("ReelForge", "shot-1")
    png = tmp_path / "key.png"
    Image.fromarray(textured(0)).save(png)
    assert check_media(png).implicit is None
    write_png_label(png, label)
    implicit = check_media(png).implicit
    assert implicit is not None and implicit["ProduceID"] == label.ProduceID
    assert np.array_equal(np.asarray(Image.open(png)), textured(0))
    wav = write_wav(tmp_path / "line.wav", np.sin(np.arange(4800) / 10).astype(np.float32) * 0.3, 48000)
    before = wav.read_bytes()
    write_wav_label(wav, label)
    write_wav_label(wav, label)  # replaces, does not pile up
    implicit = check_media(wav).implicit
    assert implicit is not None and implicit["ProduceID"] == label.ProduceID
    assert wav.read_bytes().count(b"LIST") == 1
    from core.media import read_audio

    assert np.array_equal(read_audio(wav), read_audio_bytes(before, tmp_path))
    assert probe(wav).audio is not None


def read_audio_bytes(data: bytes, tmp: Path) -> np.ndarray:
    from core.media import read_audio

    p = tmp / "orig.wav"
    p.write_bytes(data)
    return read_audio(p)


def test_bad_label_settings(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="corner"):
        LabelOverlay.build(320, 180, LabelStyle(position="middle"))
    with pytest.raises(Exception, match="opacity"):
        LabelOverlay.build(320, 180, LabelStyle(opacity=0))
    with pytest.raises(Exception, match="does not exist"):
        check_media(tmp_path / "nope.mp4")
    assert read_label({"aigc": "{not json"}) is None
