"""The whole chain on real Chinese text: make, reuse, resume after a kill, hand edits, bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from core.media import probe
from ui.cli import main

REPO = Path(__file__).resolve().parents[1]
# the delivery checks after the cut have their own tests (test_qc_episode runs make with them);
# here they would only double the time of every make
FAST = ["--size", "270x480", "--episode-seconds", "30", "--no-qc"]


def _chapter_text(novels_dir: Path) -> str:
    text = (novels_dir / "阿Q正传.txt").read_text(encoding="utf-8-sig")
    start = text.index("第二章")
    end = text.index("第四章")
    return text[start:end]  # two chapters: plenty of dialogue for one short episode


@pytest.fixture()
def novel(tmp_path: Path, novels_dir: Path) -> Path:
    path = tmp_path / "阿Q正传_节选.txt"
    path.write_bytes(_chapter_text(novels_dir).encode("gb18030"))  # not UTF-8 on purpose
    return path


def _last_stdout_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_make_writes_episode_subtitles_screenplay_and_usage(tmp_path: Path, novel: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    assert main(["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST]) == 0
    video = Path(_last_stdout_line(capsys))
    assert video == project / "out" / "ep01.mp4"
    info = probe(video)
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.audio.codec) == ("h264", "aac")
    assert (info.video.width, info.video.height) == (270 - 270 % 2, 480)
    render = json.loads((project / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))
    total = sum(s["frames"] for s in render["shots"])
    assert abs(info.video.frames - total) <= 1
    assert info.video.duration is not None and abs(info.video.duration - Fraction(total, 25)) <= Fraction(1, 25)
    srt = (project / "out" / "ep01.srt").read_text(encoding="utf-8")
    assert "-->" in srt and any("\u4e00" <= ch <= "\u9fff" for ch in srt)
    raw = (project / "screenplay.json").read_text(encoding="utf-8")
    assert "\\u" not in raw and "阿Q" in raw
    with sqlite3.connect(project / "usage.sqlite") as db:
        stages = {row[0] for row in db.execute("SELECT stage FROM usage_events")}
        licences = [row[0] for row in db.execute("SELECT licence FROM usage_events WHERE unit = 'use'")]
        unlicensed = list(db.execute("SELECT stage, engine FROM usage_events WHERE licence = ''"))
    assert {"script", "synth", "cut"} <= stages
    assert licences and all(licences)
    assert not unlicensed  # every record names the licence of what ran
    # every subtitle line is text of the novel
    source = novel.read_bytes().decode("gb18030")
    for block in srt.strip().split("\n\n"):
        line = block.splitlines()[-1]
        assert line in source or line.replace("\n", "") in source, line


def test_second_run_reuses_and_hand_edits_rerender_only_their_shot(tmp_path: Path, novel: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    args = ["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST]
    assert main(args) == 0
    capsys.readouterr()
    video = project / "out" / "ep01.mp4"
    stamp = video.stat().st_mtime_ns
    assert main(args) == 0
    assert video.stat().st_mtime_ns == stamp  # nothing redone
    manifest = json.loads((project / "manifest.json").read_text(encoding="utf-8"))
    assert all(rec["status"] == "done" for rec in manifest["stages"].values())
    # a person edits one line of the screenplay
    sp_path = project / "screenplay.json"
    sp = json.loads(sp_path.read_text(encoding="utf-8"))
    shots = [s for sc in sp["episodes"][0]["scenes"] for s in sc["shots"] if s["lines"]]
    target = shots[0]
    target["lines"][0]["text"] = "这一句台词被编剧改过了。"
    sp_path.write_text(json.dumps(sp, ensure_ascii=False, indent=2), encoding="utf-8")
    shot_dir = project / "synth" / "ep01" / "shots"
    before = {p.name: p.stat().st_mtime_ns for p in shot_dir.glob("*.png")}
    assert main(args) == 0
    after = {p.name: p.stat().st_mtime_ns for p in shot_dir.glob("*.png")}
    # only the edited shot's picture is rendered again (the others may get their sound swapped:
    # the episode's loudness is measured over the whole episode)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {f"{target['id']}.png"}
    assert "这一句台词被编剧改过了。" in (project / "out" / "ep01.srt").read_text(encoding="utf-8")
    # the edited screenplay was kept, not overwritten by the script stage
    assert "这一句台词被编剧改过了。" in sp_path.read_text(encoding="utf-8")


def test_killed_run_resumes(tmp_path: Path, novel: Path) -> None:
    project = tmp_path / "p"
    cmd = [sys.executable, "-m", "ui.cli", "-q", "make", str(novel), "--project", str(project), "--episodes", "1",
           *FAST]
    env = dict(os.environ, REELFORGE_LOG="WARNING")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shot_dir = project / "synth" / "ep01" / "shots"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if shot_dir.is_dir() and len(list(shot_dir.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make the episode longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in shot_dir.glob("*.json")}
    assert not (project / "out" / "ep01.mp4").exists()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].endswith("ep01.mp4")
    kept = [n for n, t in done_before.items() if (shot_dir / n).stat().st_mtime_ns == t]
    assert len(kept) >= 2  # the shots finished before the kill were not rendered again
    assert probe(project / "out" / "ep01.mp4").video is not None


def test_bad_novels_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert main(["-q", "make", str(empty), "--project", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "empty" in err.lower() or "空" in err
    binary = tmp_path / "pic.txt"
    binary.write_bytes(bytes(range(256)) * 40)
    assert main(["-q", "make", str(binary), "--project", str(tmp_path / "b")]) == 1
    assert "pic.txt" in capsys.readouterr().err
    assert main(["-q", "make", str(tmp_path / "missing.txt"), "--project", str(tmp_path / "m")]) == 1
