from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def studio(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", REELFORGE_LOG="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "ui", "--port", str(port), "--sample",
                             "--workspace", str(tmp_path / "ws")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"studio exited early:\n{out[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("studio did not start within 90 s")
    yield url, tmp_path / "ws"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_studio_serves_the_app_on_localhost(studio) -> None:  # type: ignore[no-untyped-def]
    url, _ = studio
    with urllib.request.urlopen(url + "/config", timeout=10) as r:
        config = json.loads(r.read().decode("utf-8"))
    text = json.dumps(config, ensure_ascii=False)
    assert "生成 Make" in text and "ReelForge" in text
    assert "灯下的账本" in text  # the sample project's novel is filled in


def test_make_and_review_through_the_studio_api(studio) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    url, ws = studio
    client = Client(url + "/", verbose=False)
    sample = (REPO / "ui" / "samples" / "sample_novel.txt").read_text(encoding="utf-8")
    first_chapter = sample[: sample.index("第二章")]
    result = client.predict(None, first_chapter, "demo", 1, 20, "竖屏 9:16 · 540x960", "auto", False,
                            api_name="/make")
    video = Path(result[0]["video"] if isinstance(result[0], dict) else result[0])
    assert video.name == "ep01.mp4" and (ws / "demo" / "out" / "ep01.mp4").exists()
    assert "synth:ep01" in result[2]
    gallery, shot_update, message, state = client.predict("demo", 1, api_name="/review_load")
    assert gallery and "待审" in message and "草稿 Draft" in state
    shot_id = gallery[0]["caption"].split(" · ")[0]
    assert "已通过" in client.predict("demo", 1, shot_id, "", "", api_name="/review_approve")
    render = json.loads((ws / "demo" / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))
    assert next(s for s in render["shots"] if s["id"] == shot_id)["review"] == "approved"
    # the single user is an admin: the episode goes through its states, each on the trail
    client.predict("demo", 1, "", api_name="/episode_submit")
    message, state = client.predict("demo", 1, "看过了 fine", api_name="/episode_approve")
    assert "已通过" in message and "已通过 Approved" in state
    trail = [json.loads(line) for line in (ws / "demo" / "trail.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [t["action"] for t in trail] == ["project.make", "shot.approve", "episode.submit", "episode.approve"]
    assert trail[1]["subject"] == f"ep01/{shot_id}" and len(trail[1]["hashes"]["clip"]) == 64
    import hashlib

    video_hash = hashlib.sha256((ws / "demo" / "out" / "ep01.mp4").read_bytes()).hexdigest()
    assert trail[3]["hashes"]["video"] == video_hash and trail[3]["state"] == {"from": "in_review", "to": "approved"}
