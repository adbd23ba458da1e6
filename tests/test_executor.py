"""The executor seam without Ray: plans, the local executor, atomic writes, episode selection, and
`reelforge enhance DIR_IN DIR_OUT` over a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from agents.studio import select_episodes
from core.errors import InputError
from core.executor import LocalExecutor, Plan, Task, TaskFailed, TaskResult
from core.files import atomic_path, atomic_write_text
from core.screenplay import Series
from tests.support.toy_tasks import KINDS_PATH
from ui.cli import main, parse_episodes


def _plan(root: Path) -> Plan:
    plan = Plan(root=str(root), kinds=KINDS_PATH)
    for i in range(3):
        plan.add(Task(f"w{i}", "write", {"out": f"parts/{i}.txt", "text": f"<{i}>"}, outputs=(f"parts/{i}.txt",)))
    plan.add(Task("j", "join", {"parts": [f"parts/{i}.txt" for i in range(3)], "out": "all.txt"},
                  after=("w0", "w1", "w2"), inputs=("parts/0.txt",), outputs=("all.txt",)))
    return plan


def test_local_executor_runs_in_order_reports_and_reuses(tmp_path: Path) -> None:
    seen: list[TaskResult] = []
    fractions: list[float] = []
    res = LocalExecutor().run(_plan(tmp_path), on_result=seen.append, progress=lambda f, m: fractions.append(f))
    assert (tmp_path / "all.txt").read_text(encoding="utf-8") == "<0><1><2>"
    assert [r.task for r in seen] == ["w0", "w1", "w2", "j"]
    assert res["j"].output is not None and res["j"].output.notes == ["joined 3"]
    assert fractions[-1] == pytest.approx(1.0)
    again = LocalExecutor().run(_plan(tmp_path))
    assert [again[f"w{i}"].status for i in range(3)] == ["reused"] * 3
    # on_start may skip a task (the Studio does when a stage is up to date)
    skipped = LocalExecutor().run(_plan(tmp_path), on_start=lambda t: t.id != "j")
    assert skipped["j"].status == "skipped"


def test_a_failing_task_stops_the_plan_and_keeps_finished_work(tmp_path: Path) -> None:
    plan = Plan(root=str(tmp_path), kinds=KINDS_PATH)
    plan.add(Task("a", "write", {"out": "a.txt", "text": "a"}, outputs=("a.txt",)))
    plan.add(Task("bad", "fail"))
    plan.add(Task("c", "write", {"out": "c.txt", "text": "c"}, outputs=("c.txt",)))
    with pytest.raises(TaskFailed) as e:
        LocalExecutor().run(plan)
    assert e.value.result.task == "bad" and "boom" in e.value.message
    assert (tmp_path / "a.txt").exists() and not (tmp_path / "c.txt").exists()


def test_plans_refuse_bad_graphs(tmp_path: Path) -> None:
    plan = Plan(root=str(tmp_path), kinds=KINDS_PATH)
    with pytest.raises(ValueError, match="not in the plan"):
        plan.add(Task("x", "write", after=("nope",)))
    with pytest.raises(ValueError, match="inside the project"):
        plan.add(Task("y", "write", outputs=("../escape.txt",)))
    plan.add(Task("a", "write", outputs=("same.txt",)))
    plan.add(Task("b", "write", outputs=("same.txt",)))
    with pytest.raises(ValueError, match="both write"):
        plan.validate()
    missing = Plan(root=str(tmp_path), kinds=KINDS_PATH)
    missing.add(Task("j", "join", {"parts": [], "out": "o.txt"}, inputs=("not-there.txt",)))
    with pytest.raises(TaskFailed, match="not in the project folder"):
        LocalExecutor().run(missing)


def test_atomic_writes_leave_no_half_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise KeyboardInterrupt  # a worker stopped mid-write
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left behind


def test_episode_selection_count_and_range() -> None:
    assert parse_episodes("3") == (3, None)
    assert parse_episodes("4-10") == (4, 10)
    for bad in ("0", "5-2", "x", "1-"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_episodes(bad)
    series = Series.model_validate({"title": "t", "episodes": [
        {"number": n, "title": f"e{n}", "scenes": []} for n in range(1, 6)]})
    assert select_episodes(series, 2) == [1, 2]
    assert select_episodes(series, None) == [1, 2, 3, 4, 5]
    assert select_episodes(series, None, (2, 4)) == [2, 3, 4]
    with pytest.raises(InputError, match="not all in the screenplay"):
        select_episodes(series, None, (4, 9))


def test_enhance_a_folder_makes_each_file_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(src / name), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    (src / "notes.txt").write_text("not media", encoding="utf-8")
    args = ["-q", "enhance", str(src), str(dst), "--model", "classic", "--scale", "2"]
    assert main(args) == 0
    assert capsys.readouterr().out.split() == [str(dst / "a.png"), str(dst / "b.png")]
    for name in ("a.png", "b.png"):
        img = cv2.imread(str(dst / name))
        assert img is not None and img.shape == (48, 64, 3)
    stamps = {p.name: p.stat().st_mtime_ns for p in dst.glob("*.png")}
    assert main(args) == 0  # a second run keeps what is finished
    assert {p.name: p.stat().st_mtime_ns for p in dst.glob("*.png")} == stamps
    assert not (dst / "notes.txt").exists()
    assert main(["-q", "enhance", str(src), str(src), "--model", "classic"]) == 1
    assert "output folder is the input folder" in capsys.readouterr().err
