"""Series throughput: N episodes with the local executor vs the Ray executor on this machine, and
the orchestration overhead per task.

    python -m benchmarks series_bench [--episodes 3] [--seconds 15] [--tasks 200] [--cpus N]

Each make runs in a fresh project (nothing reused) from the same novel excerpt (阿Q正传, chapters
2-3, from ``$REELFORGE_SHARED_DATA``) at 270x480. The Ray make starts a local cluster of
``--cpus`` CPUs (default: all); its start-up is timed apart. The overhead rows run ``--tasks``
tasks that do nothing, in this process and as Ray tasks, and divide the wall time by the count.
The episodes of both makes are compared byte for byte.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, table
from core.executor import LocalExecutor, Plan, Task, TaskContext, TaskOutput
from core.registry import Registry

KINDS: Registry[TaskOutput] = Registry("bench-task", "the series benchmark's no-op task")


@KINDS.register("noop", description="does nothing: what is left is the executor's own cost")
def noop(ctx: TaskContext) -> TaskOutput:
    return TaskOutput(value=ctx.task.id)


def _noop_plan(root: Path, count: int) -> Plan:
    plan = Plan(root=str(root), kinds="benchmarks.series_bench:KINDS")
    for i in range(count):
        plan.add(Task(f"noop/{i:05d}", "noop"))
    return plan


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks series_bench")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0, help="target length of an episode")
    ap.add_argument("--tasks", type=int, default=200, help="no-op tasks for the overhead rows")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray cluster")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import ray

    from agents.executors.ray import RayExecutor
    from agents.studio import Studio, StudioSettings
    from core.config import load_config

    data = Path(os.environ.get("REELFORGE_SHARED_DATA", "../shared/data"))
    text = (data / "novels" / "阿Q正传.txt").read_text(encoding="utf-8-sig")
    config = load_config()
    settings = StudioSettings.from_config(config, episodes=a.episodes, episode_seconds=a.seconds, width=270, height=480)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        novel = Path(tmp) / "novel.txt"
        novel.write_text(text[text.index("第二章"):text.index("第四章")], encoding="utf-8")

        t = time.perf_counter()
        local = Studio(Path(tmp) / "local", config, executor=LocalExecutor()).make(novel, settings)
        local_s = time.perf_counter() - t
        tasks = sum(c for kinds in local.tasks.values() for c in kinds.values())

        t = time.perf_counter()
        ex = RayExecutor(address="local", num_cpus=a.cpus)
        ex.connect()
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        remote = Studio(Path(tmp) / "ray", config, executor=ex).make(novel, settings)
        ray_s = time.perf_counter() - t
        same = all(x.read_bytes() == y.read_bytes() for x, y in zip(local.episodes, remote.episodes, strict=True))

        t = time.perf_counter()
        LocalExecutor().run(_noop_plan(Path(tmp), a.tasks))
        noop_local = (time.perf_counter() - t) / a.tasks
        t = time.perf_counter()
        ex.run(_noop_plan(Path(tmp), a.tasks))
        noop_ray = (time.perf_counter() - t) / a.tasks
        cluster_cpus = ray.cluster_resources().get("CPU", 0)
        ex.close()

    n = len(local.episodes)
    rows.append(["local executor (this process)", f"{local_s:.1f} s", f"{n / local_s * 60:.2f}", "1.00x"])
    rows.append([f"Ray executor, local cluster of {cluster_cpus:g} CPU", f"{ray_s:.1f} s", f"{n / ray_s * 60:.2f}",
                 f"{local_s / ray_s:.2f}x"])
    print(f"machine: {machine()}")
    print(f"series: {n} episodes, {tasks} tasks, {a.seconds:g} s target each, 270x480; "
          f"episodes byte-identical: {same}")
    print(table(["executor", "wall", "episodes/min", "speed-up"], rows))
    print(f"Ray local cluster start-up (not in the Ray row): {start_s:.1f} s")
    print(table(["orchestration overhead", "per task"], [
        ["local executor, no-op task", f"{noop_local * 1e3:.2f} ms"],
        [f"Ray executor, no-op Ray task ({a.tasks} tasks)", f"{noop_ray * 1e3:.2f} ms"]]))
    return 0
