"""TTS engines: piper (when a voice is installed), an HTTP service on loopback, rate and pitch."""

from __future__ import annotations

import io
import json
import threading
import wave
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from pipelines.tts import (
    HTTPEngine,
    PiperEngine,
    TTSError,
    TTSOptions,
    VoiceSpec,
    assign_voice,
    get_engine,
    has_chinese,
)


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


class _Service(BaseHTTPRequestHandler):
    """A fake TTS service: a 300 Hz tone, 0.25 s per character divided by the requested speed."""

    requests: list[dict[str, object]] = []
    headers_seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        type(self).headers_seen.append(self.headers.get("Authorization", ""))
        if body["input"] == "坏":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"synthesis failed")
            return
        seconds = 0.25 * len(body["input"]) / float(body["speed"])
        t = np.arange(int(seconds * 16000)) / 16000
        data = _wav(0.5 * np.sin(2 * np.pi * 300 * t), 16000)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def service() -> Iterator[str]:
    _Service.requests = []
    _Service.headers_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/audio/speech"
    finally:
        server.shutdown()
        server.server_close()


def _pitch_hz(samples: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spec) * rate / len(samples))


def test_http_engine_speaks_with_one_voice_per_character_rate_and_pitch(service: str) -> None:
    opts = TTSOptions(http_url=service, http_key="sk-test", http_model="tts-1", http_voices=("alloy", "nova", "echo"))
    engine = get_engine("http", opts)
    assert isinstance(engine, HTTPEngine)
    plain = engine.synthesize("你好世界", VoiceSpec("cmn+m3", rate_wpm=170, pitch=50))
    assert plain.seconds == Fraction(16000, 16000) and plain.engine == "http"
    assert _Service.headers_seen[-1] == "Bearer sk-test"
    req = _Service.requests[-1]
    assert req["model"] == "tts-1" and req["response_format"] == "wav" and req["input"] == "你好世界"
    # one stable voice per character, from the service's list
    a1 = engine.voice_for(assign_voice("阿Q"))
    assert a1 == engine.voice_for(assign_voice("阿Q")) and a1 in opts.http_voices
    # rate: twice as fast -> half as long
    fast = engine.synthesize("你好世界", VoiceSpec("x", rate_wpm=340, pitch=50))
    assert abs(fast.seconds - Fraction(1, 2)) < Fraction(1, 100)
    # pitch +50 -> 4 semitones up at the same duration
    high = engine.synthesize("你好世界", VoiceSpec("x", rate_wpm=170, pitch=100))
    assert abs(high.seconds - 1) < Fraction(1, 100)
    assert _pitch_hz(high.samples, high.rate) == pytest.approx(300 * 2 ** (4 / 12), rel=0.02)
    assert _pitch_hz(plain.samples, plain.rate) == pytest.approx(300, rel=0.02)
    with pytest.raises(TTSError, match="500"):
        engine.synthesize("坏", VoiceSpec())


def test_http_engine_reports_an_unreachable_service() -> None:
    engine = HTTPEngine(TTSOptions(http_url="http://127.0.0.1:9/v1/audio/speech", timeout_s=2))
    with pytest.raises(TTSError, match="unreachable"):
        engine.synthesize("你好", VoiceSpec())
    with pytest.raises(Exception, match="not available"):
        get_engine("http", TTSOptions())


def test_piper_engine_speaks_english_and_refuses_chinese() -> None:
    if not PiperEngine.available():
        pytest.skip("piper-tts, onnxruntime or a piper voice package is not installed")
    engine = get_engine("piper")
    speech = engine.synthesize("Hello, this is a test.", VoiceSpec("en", rate_wpm=170, pitch=50))
    assert speech.seconds > Fraction(1, 2) and np.abs(speech.samples).max() > 0.05
    slow = engine.synthesize("Hello, this is a test.", VoiceSpec("en", rate_wpm=85, pitch=50))
    assert slow.seconds > speech.seconds * Fraction(3, 2)  # half the rate: clearly longer
    with pytest.raises(TTSError, match="cannot speak Chinese"):
        engine.synthesize("你好", VoiceSpec())
    assert has_chinese("阿Q说") and not has_chinese("hello")
