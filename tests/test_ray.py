"""The Studio on a local Ray cluster: the same episodes as in one process, a worker node killed
mid-run, a driver killed mid-run and started again.

Every test starts its own cluster (a few seconds on a free machine); they need the extra ``ray``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents.studio import Studio, StudioSettings
from core.config import load_config
from core.executor import LocalExecutor
from core.media import probe

ray = pytest.importorskip("ray")
from agents.executors.ray import RayExecutor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZE = {"width": 270, "height": 480}


@pytest.fixture()
def novel(tmp_path: Path, novels_dir: Path) -> Path:
    text = (novels_dir / "阿Q正传.txt").read_text(encoding="utf-8-sig")
    path = tmp_path / "阿Q正传_节选.txt"
    path.write_text(text[text.index("第二章"):text.index("第四章")], encoding="utf-8")
    return path


def _settings(episodes: int, seconds: float) -> StudioSettings:
    return StudioSettings.from_config(load_config(), episodes=episodes, episode_seconds=seconds, **SIZE)


def _shot_files(project: Path) -> list[Path]:
    return sorted(project.glob("synth/ep*/shots/*.json"))


def _check_episode(video: Path) -> None:
    info = probe(video)
    assert info.video is not None and info.audio is not None
    render = json.loads((video.parents[1] / "synth" / video.stem / "render.json").read_text(encoding="utf-8"))
    assert abs(info.video.frames - sum(s["frames"] for s in render["shots"])) <= 1


def test_ray_makes_the_same_episodes_as_one_process(tmp_path: Path, novel: Path) -> None:
    config = load_config()
    settings = _settings(3, 15)
    local = Studio(tmp_path / "local", config, executor=LocalExecutor()).make(novel, settings)
    assert len(local.episodes) == 3
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ex = RayExecutor(address="auto")
        res = Studio(tmp_path / "ray", config, executor=ex).make(novel, settings)
        ex.close()
    finally:
        ray.shutdown()
    assert res.executor == "ray" and res.count("synth.shot", "done") >= 3
    for a, b in zip(local.episodes, res.episodes, strict=True):
        assert a.name == b.name
        assert a.read_bytes() == b.read_bytes()  # the whole file: video and audio streams and the label
        assert a.with_suffix(".srt").read_bytes() == b.with_suffix(".srt").read_bytes()
    # no half file or temporary name is left in the project
    assert not [p for p in (tmp_path / "ray").rglob("*") if ".tmp" in p.name]


def test_a_worker_node_killed_mid_run_still_yields_every_episode(tmp_path: Path, novel: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    victim = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    project = tmp_path / "p"
    outcome: dict[str, Any] = {}

    def make() -> None:
        try:
            ex = RayExecutor(address=cluster.address, retries=3)
            outcome["result"] = Studio(project, load_config(), executor=ex).make(novel, _settings(2, 20))
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = e

    ray.init(address=cluster.address, log_to_driver=False)
    try:
        driver = threading.Thread(target=make)
        driver.start()
        deadline = time.time() + 240
        while time.time() < deadline and driver.is_alive() and len(_shot_files(project)) < 2:
            time.sleep(0.05)
        assert driver.is_alive(), f"the make ended before the node could be killed: {outcome}"
        cluster.remove_node(victim, allow_graceful=False)  # SIGKILL to the node's raylet and workers
        driver.join(timeout=600)
        assert not driver.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert [p.name for p in result.episodes] == ["ep01.mp4", "ep02.mp4"]
    for video in result.episodes:
        _check_episode(video)
    manifest = json.loads((project / "manifest.json").read_text(encoding="utf-8"))
    assert all(rec["status"] == "done" for rec in manifest["stages"].values())


def test_a_killed_driver_resumes_without_redoing_finished_shots(tmp_path: Path, novel: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    project = tmp_path / "p"
    cmd = [sys.executable, "-m", "ui.cli", "-q", "make", str(novel), "--project", str(project), "--episodes", "2",
           "--size", "270x480", "--episode-seconds", "20", "--ray", cluster.address]
    env = dict(os.environ, REELFORGE_LOG="WARNING")
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and len(_shot_files(project)) < 3:
            time.sleep(0.05)
        assert proc.poll() is None, "the make finished before its driver could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)  # the workers of a dead driver's tasks may finish a file; it is whole or absent
        before = {p: p.stat().st_mtime_ns for p in _shot_files(project)}
        assert not (project / "out" / "ep02.mp4").exists()
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    finally:
        cluster.shutdown()
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [str(project / "out" / "ep01.mp4"), str(project / "out" / "ep02.mp4")]
    kept = [p for p, t in before.items() if p.stat().st_mtime_ns == t]
    assert len(kept) >= 3 and len(kept) == len(before)  # no finished shot was made again
    for n in (1, 2):
        _check_episode(project / "out" / f"ep{n:02d}.mp4")
