from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.aigc import read_label
from core.media import iter_frames, probe, read_audio, samples_for_frames
from tests.media_utils import make_clip
from ui.cli import main, parse_size

REPO = Path(__file__).resolve().parents[1]


def test_enhance_image_upscales_and_keeps_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import PngImagePlugin

    src = tmp_path / "in.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("AIGC", '{"Label":"1","ContentProducer":"x"}')
    grad = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    Image.fromarray(np.dstack([grad] * 3)).save(src, pnginfo=info)
    out = tmp_path / "out.png"
    assert main(["-q", "enhance", str(src), str(out), "--scale", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as im:
        assert im.size == (128, 96)
        assert json.loads(im.info["AIGC"])["Label"] == "1"
        up = np.asarray(im.convert("L"), dtype=float)
    # a smooth ramp stays a ramp: classic upscaling invents nothing
    assert np.all(np.diff(up[48, 8:120]) >= -2)


def test_enhance_video_keeps_audio_sync_and_label(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", 40, metadata={"AIGC": '{"Label":"1","ContentProducer":"x"}'})
    out = tmp_path / "out.mp4"
    assert main(["-q", "enhance", str(src), str(out), "--scale", "2"]) == 0
    info = probe(out)
    assert info.video is not None and (info.video.width, info.video.height) == (256, 144)
    assert info.video.frames == 40 and info.video.fps == 25
    audio = read_audio(out)
    want = samples_for_frames(40, Fraction(25), 48000)
    assert want <= len(audio) <= want + 1024
    assert read_label(info.metadata) is not None
    from tests.media_utils import read_index

    small = [read_index(np.asarray(Image.fromarray(f.image).resize((128, 72)))) for f in iter_frames(out)]
    assert small == list(range(40))


def test_enhance_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    assert main(["-q", "enhance", str(bad), str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "error" in err
    assert main(["-q", "enhance", str(tmp_path / "missing.png"), str(tmp_path / "o.png")]) == 1
    assert "does not exist" in capsys.readouterr().err
    broken_png = tmp_path / "broken.png"
    broken_png.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["-q", "enhance", str(broken_png), str(tmp_path / "o.png")]) == 1


def test_doctor_is_truthful(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    import torch

    assert report["torch"]["cuda"] == torch.cuda.is_available()
    assert report["media"]["codecs"]["libx264"] is True
    from core.fonts import available_cjk_fonts
    from pipelines.tts import available_engines

    assert len(report["fonts"]) == len(available_cjk_fonts())
    assert {v["engine"] for v in report["tts"] if v["available"]} == set(available_engines())
    assert main(["doctor"]) == 0
    assert "ReelForge doctor" in capsys.readouterr().out


def test_parse_size() -> None:
    assert parse_size("9:16") == (1080, 1920)
    assert parse_size("720x1280") == (720, 1280)
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("721x1280")


def test_console_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "make" in proc.stdout and "doctor" in proc.stdout
