"""True peak and loudness: our oversampler and limiter against FFmpeg's ebur128 and pyloudnorm, on real sound."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from core.media import read_audio, write_wav
from pipelines.audio import limit_peaks, normalize_loudness, true_peak_blocks, true_peak_db
from pipelines.qc.loudness import measure_audio

R = 48000


def test_true_peak_finds_the_peaks_between_samples() -> None:
    t = np.arange(R)
    # a sine at a quarter of the rate, 45 degrees off: every sample reads 0.707, the wave reaches 1.0
    quarter = np.sin(2 * np.pi * (R / 4) * t / R + np.pi / 4).astype(np.float32)
    assert np.abs(quarter).max() == pytest.approx(0.7071, abs=1e-3)
    assert true_peak_db(quarter) == pytest.approx(0.0, abs=0.1)  # +3 dB over the sample peak
    assert true_peak_db((0.5 * np.sin(2 * np.pi * 997 * t / R)).astype(np.float32)) == pytest.approx(-6.02, abs=0.02)
    assert true_peak_db(np.zeros(100, np.float32)) == -math.inf
    # blocks that cannot reach `above` are bounded, never underestimated where it matters
    x = np.random.default_rng(3).normal(0, 0.1, R).astype(np.float32)
    exact, fast = true_peak_blocks(x, 120), true_peak_blocks(x, 120, above=0.35)
    assert np.array_equal(exact[exact >= 0.35], fast[exact >= 0.35]) and (fast >= exact - 1e-6).all()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """Real speech (espeak-ng Mandarin) with a hard transient, as a WAV file."""
    from core.media import resample_audio
    from pipelines.tts import EspeakNGProgram, VoiceSpec

    if not EspeakNGProgram.available():
        pytest.skip("espeak-ng with the cmn voice is not installed")
    eng = EspeakNGProgram()
    parts = [eng.synthesize(t, VoiceSpec("cmn+m3", 170, 45)) for t in ("暮春的雨下了一整夜。", "城南老街的尽头，有一家修表铺。")]
    x = np.concatenate([resample_audio(p.samples, p.rate, R) for p in parts]).astype(np.float32)
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    write_wav(path, x * 0.5, R)
    return read_audio(path, rate=R)[:, 0], path


def test_our_meter_agrees_with_ffmpeg_and_pyloudnorm(speech: tuple[np.ndarray, Path]) -> None:
    x, path = speech
    m = measure_audio(path)
    assert m.present and m.seconds == pytest.approx(len(x) / R, abs=0.01)
    # true peak: our 4x oversampler against FFmpeg's
    assert true_peak_db(x) == pytest.approx(m.true_peak_db, abs=0.3)
    # the streamed 100 ms blocks equal the whole-file ones
    whole = true_peak_blocks(x, R // 10)
    assert len(m.peak_blocks) == len(whole) and np.allclose(m.peak_blocks, whole, atol=1e-6)
    if importlib.util.find_spec("pyloudnorm") is None:
        pytest.skip("pyloudnorm (the second meter) is not installed")
    import pyloudnorm

    assert m.integrated_lufs == pytest.approx(pyloudnorm.Meter(R).integrated_loudness(x.astype(np.float64)), abs=0.2)


def test_the_limiter_holds_the_true_peak_ceiling(speech: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    x, _ = speech
    spiky = x.copy()
    spiky[R // 2:R // 2 + 240] = 0.99 * np.sign(np.sin(np.arange(240) * 0.9))  # a square burst: big overs
    for ceiling in (-1.0, -2.0, -3.0):
        out = normalize_loudness(spiky, R, -14.0, ceiling)
        assert out.limited and out.true_peak_db <= ceiling + 0.005
        assert out.output_lufs == pytest.approx(-14.0, abs=0.15)
        path = write_wav(tmp_path / f"limited{ceiling}.wav", out.samples, R)
        # FFmpeg's meter on the 16-bit file agrees that the ceiling holds (within its 0.01 rounding)
        assert measure_audio(path).true_peak_db <= ceiling + 0.1
    quiet = (x * 0.05).astype(np.float32)
    same, reduction = limit_peaks(quiet, R, -1.0)
    assert reduction == 0.0 and np.array_equal(same, quiet)  # nothing near the ceiling: untouched
