"""Hardening of the project chain (issue "Hardening"): every case reproduced through the CLI.

No file outside the project, nothing of the user's overwritten or deleted, no hang, no traceback
on the console: each test below is one recipe of the issue, run the way a user runs it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from core.screenplay import Series
from tests.support.fs import FAST_MAKE, snapshot, tmpfs, write_novel
from ui.cli import main

REPO = Path(__file__).resolve().parents[1]


def _make(novel: Path, project: Path, *extra: str) -> int:
    return main(["-q", "make", str(novel), "--project", str(project), *FAST_MAKE, *extra])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished project of the tiny novel; tests copy it."""
    root = tmp_path_factory.mktemp("made")
    novel = write_novel(root)
    assert _make(novel, root / "p") == 0
    return root / "p"


def _copy(made: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(made, dst)
    return dst


def _edit_screenplay(project: Path, fn: object) -> None:
    path = project / "screenplay.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    fn(data)  # type: ignore[operator]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


# --- 1. ids that become paths --------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["../../../../victim/settings", "/tmp/victim-abs/settings", "a/b", "..", ".hidden",
                                  "C:\\\\x", "con", "k\x00", ""])
def test_unsafe_shot_and_scene_ids_are_refused_at_load(evil: str) -> None:
    data = json.loads(Series(title="t").to_json())
    data["episodes"] = [{"number": 1, "scenes": [{"id": "s1", "shots": [{"id": evil}]}]}]
    with pytest.raises(InputError) as e:
        Series.from_data(data)
    assert "episodes[0].scenes[0].shots[0].id" in e.value.message
    data["episodes"][0]["scenes"][0]["id"] = evil
    data["episodes"][0]["scenes"][0]["shots"][0]["id"] = "k01"
    with pytest.raises(InputError) as e:
        Series.from_data(data)
    assert "episodes[0].scenes[0].id" in e.value.message


def test_shot_id_leading_out_of_the_project_writes_nothing_outside(tmp_path: Path, made: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "home"
    project = _copy(made, root / "work" / "p")
    victim = root / "victim"
    victim.mkdir()
    (victim / "settings").write_text("the user's settings", encoding="utf-8")
    absolute = tmp_path / "abs-target"

    for evil in ("../../../victim/settings", str(absolute / "settings")):
        _edit_screenplay(project, lambda d, e=evil: d["episodes"][0]["scenes"][0]["shots"][1].__setitem__("id", e))
        before = snapshot(tmp_path, exclude=(project,))
        capsys.readouterr()
        assert _make(project / "source" / "novel.txt", project) == 1
        err = capsys.readouterr().err
        assert "shot id" in err and "cannot be used as a file name" in err and "Traceback" not in err
        assert snapshot(tmp_path, exclude=(project,)) == before
        assert (victim / "settings").read_text(encoding="utf-8") == "the user's settings"
        assert not absolute.exists()


def test_duplicate_shot_ids_are_named(tmp_path: Path, made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = _copy(made, tmp_path / "p")

    def dup(d: dict) -> None:
        shots = d["episodes"][0]["scenes"][0]["shots"]
        shots[2]["id"] = shots[1]["id"].upper()  # one file on a case-insensitive disk

    _edit_screenplay(project, dup)
    capsys.readouterr()
    assert main(["-q", "synth", str(project)]) == 1
    err = capsys.readouterr().err
    assert "duplicate shot ids" in err and "E01S01K02" in err and "frames" not in err


def test_duplicate_episode_numbers_are_named() -> None:
    with pytest.raises(InputError, match="duplicate episode numbers: 1"):
        Series.from_data({"title": "t", "episodes": [{"number": 1}, {"number": 1}]})


# --- 4. a folder that is not a project ----------------------------------------------------------
def test_make_refuses_a_non_empty_folder_that_is_not_a_project(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    novel = write_novel(tmp_path)
    folder = tmp_path / "mine"
    (folder / "source").mkdir(parents=True)
    (folder / "out").mkdir()
    (folder / "source" / "draft2.txt").write_text("my second draft", encoding="utf-8")
    (folder / "out" / "ep01.mp4").write_bytes(b"my own video")
    before = snapshot(folder)
    capsys.readouterr()
    assert _make(novel, folder) == 1
    err = capsys.readouterr().err
    assert "not a ReelForge project" in err and "--adopt" in err
    assert snapshot(folder) == before  # nothing written, nothing deleted


def test_adopted_folder_keeps_the_users_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    novel = write_novel(tmp_path)
    folder = tmp_path / "mine"
    (folder / "source").mkdir(parents=True)
    (folder / "source" / "draft2.txt").write_text("my second draft", encoding="utf-8")
    (folder / "notes.txt").write_text("notes", encoding="utf-8")
    assert _make(novel, folder, "--adopt") == 0
    assert (folder / "source" / "draft2.txt").read_text(encoding="utf-8") == "my second draft"
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "notes"
    # a user's file where a stage writes is never replaced: the stage stops and names it
    other = tmp_path / "mine2"
    (other / "out").mkdir(parents=True)
    (other / "out" / "ep01.mp4").write_bytes(b"my own video")
    capsys.readouterr()
    assert _make(novel, other, "--adopt") == 1
    assert "out/ep01.mp4" in capsys.readouterr().err
    assert (other / "out" / "ep01.mp4").read_bytes() == b"my own video"


def test_a_new_novel_replaces_only_the_source_we_copied(tmp_path: Path, made: Path) -> None:
    project = _copy(made, tmp_path / "p")
    (project / "source" / "draft2.txt").write_text("the user's draft", encoding="utf-8")
    second = write_novel(tmp_path / "n2", "second.txt")
    assert _make(second, project) == 0
    names = sorted(p.name for p in (project / "source").iterdir())
    assert names == ["draft2.txt", "second.txt"]  # our old copy replaced, the user's draft kept


# --- 5. sizes and SIGTERM -------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["2x2", "4x4", "32x64", "99999x99999", "100x101"])
def test_unusable_sizes_are_refused_up_front(tmp_path: Path, size: str, capsys: pytest.CaptureFixture[str]) -> None:
    novel = write_novel(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["-q", "make", str(novel), "--project", str(tmp_path / "p"), "--size", size])
    assert e.value.code == 2
    assert "size" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_every_text_shrinking_loop_ends_on_tiny_cards() -> None:
    from pipelines.cards import CardSpec, render_card

    for w, h in [(2, 2), (4, 6), (16, 16)]:  # below the CLI's limit: the library must still end
        img = render_card(CardSpec(width=w, height=h, header="第1集 场2 · 日 · 外 · 未庄的大街上", place="未庄",
                                   speaker="阿Q", subtitle="我们先前比你阔多啦！" * 5))
        assert img.shape == (h, w, 3)


def test_sigterm_releases_the_lock_and_records_the_stage(tmp_path: Path, made: Path) -> None:
    project = _copy(made, tmp_path / "p")
    # a longer episode so that the run is still busy when the signal comes
    _edit_screenplay(project, lambda d: [s.__setitem__("seconds", 6.0)
                                         for sc in d["episodes"][0]["scenes"] for s in sc["shots"]])
    env = dict(os.environ, REELFORGE_LOG="WARNING")
    cmd = [sys.executable, "-m", "ui.cli", "-q", "synth", str(project)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    manifest = project / "manifest.json"
    while time.time() < deadline and proc.poll() is None:
        if '"running"' in manifest.read_text(encoding="utf-8"):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "synth finished before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 143), err
    assert "Traceback" not in err
    assert not (project / ".lock").exists()
    stages = json.loads(manifest.read_text(encoding="utf-8"))["stages"]
    assert stages["synth:ep01"]["status"] == "failed"


# --- 9. disk full ----------------------------------------------------------------------------------
def test_disk_full_during_a_stage_is_one_message_and_recoverable(tmp_path: Path, made: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated with ENOSPC from the video encoder's file (portable; the tmpfs test below is real)."""
    import av.container.output

    project = _copy(made, tmp_path / "p")
    _edit_screenplay(project, lambda d: d["episodes"][0]["scenes"][0]["shots"][1]["lines"][0].__setitem__(
        "text", "改过的台词，重新合成。"))
    real_open = av.open

    def full_open(file: Any, mode: Any = "r", *a: Any, **k: Any) -> Any:
        if mode == "w":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(av, "open", full_open)
    capsys.readouterr()
    assert main(["-q", "synth", str(project)]) == 1
    err = capsys.readouterr().err
    assert "disk full" in err and "Traceback" not in err and "During handling" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("reelforge: error:")]
    assert len(lines) == 1
    stages = json.loads((project / "manifest.json").read_text(encoding="utf-8"))["stages"]
    assert stages["synth:ep01"]["status"] == "failed"
    assert not list([p for p in project.iterdir() if ".tmp" in p.name]) and not list(project.rglob("*.part.*"))
    monkeypatch.setattr(av, "open", real_open)
    assert main(["-q", "synth", str(project)]) == 0  # space freed: the same command finishes


def test_a_disk_too_small_is_refused_before_the_work(tmp_path: Path, made: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A real 3 MB tmpfs (root only): the free-space check stops the run before any stage starts."""
    with tmpfs(tmp_path / "disk", "3m") as disk:
        project = _copy(made, disk / "p")
        _edit_screenplay(project, lambda d: d["episodes"][0]["scenes"][0]["shots"][1]["lines"][0].__setitem__(
            "text", "改过的台词，重新合成。"))
        capsys.readouterr()
        assert main(["-q", "synth", str(project)]) == 1
        err = capsys.readouterr().err
        assert "free; this needs about" in err and "Traceback" not in err
        stages = json.loads((project / "manifest.json").read_text(encoding="utf-8"))["stages"]
        assert stages["synth:ep01"]["status"] not in ("running", "failed")  # no stage started


def test_manifest_and_screenplay_writes_on_a_full_disk(tmp_path: Path, made: Path) -> None:
    """A real full tmpfs (root only): no 0-byte temporary file, the old manifest intact, then recovery."""
    from core.errors import DiskFullError
    from core.workspace import Workspace
    from tests.support.fs import fill

    with tmpfs(tmp_path / "disk", "8m") as disk:
        project = _copy(made, disk / "p")
        ws = Workspace(project)
        before = ws.manifest_path.read_text(encoding="utf-8")
        series = Series.load(ws.screenplay_path)
        fill(disk, leave=0)
        with pytest.raises(DiskFullError) as e:
            ws.mark_running("synth:ep01", "r1")
        assert "manifest.json" in e.value.message and "disk full" in e.value.message
        with pytest.raises(DiskFullError):
            series.save(ws.screenplay_path)
        assert not list([p for p in project.iterdir() if ".tmp" in p.name])
        assert ws.manifest_path.read_text(encoding="utf-8") == before
        ws.mark_failed("synth:ep01", "r1", "x")  # best effort: no exception while another is raised
        (disk / ".filler").unlink()
        ws.mark_running("synth:ep01", "r1")
        assert ws.manifest()["stages"]["synth:ep01"]["status"] == "running"


# --- 10. read-only places, config files ----------------------------------------------------------
def test_project_on_a_read_only_disk_fails_before_any_work(tmp_path: Path, made: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copytree(made, tmp_path / "stage" / "p")
    with tmpfs(ro, "8m"):
        shutil.copytree(tmp_path / "stage" / "p", ro / "p")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        capsys.readouterr()
        assert _make(ro / "p" / "source" / "novel.txt", ro / "p") == 1
        err = capsys.readouterr().err
        assert "Read-only file system" in err and str(ro / "p") in err and "Traceback" not in err


def test_config_that_is_a_folder_or_has_a_bom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REELFORGE_CONFIG", str(tmp_path))
    assert main(["doctor", "--json"]) == 1
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err
    cfg = tmp_path / "c.toml"
    cfg.write_bytes("\ufeff[render]\nfps = \"25\"\n".encode())
    monkeypatch.setenv("REELFORGE_CONFIG", str(cfg))
    assert main(["doctor", "--json"]) == 0  # a BOM is read past, with a warning
    capsys.readouterr()
    cfg.write_bytes("\ufeff[render\nfps = 25\n".encode())
    assert main(["doctor", "--json"]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_os_errors_are_one_line_with_the_log_path(tmp_path: Path, made: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Any OSError that escapes a command: one line naming path and cause; the traceback in the run's log."""
    import agents.studio

    def boom(*a: object, **k: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/some/where/x.bin")

    project = _copy(made, tmp_path / "p")
    monkeypatch.setattr(agents.studio.Studio, "cut", boom)
    capsys.readouterr()
    assert main(["-q", "cut", "assemble", str(project)]) == 1
    err = capsys.readouterr().err
    assert "reelforge: error: '/some/where/x.bin': Permission denied" in err
    assert "Traceback" not in err
    log = Path(err.split("reelforge: details: ")[1].strip())
    assert log.parent == project / "logs" and "Traceback" in log.read_text(encoding="utf-8")


def test_disk_full_never_leaves_half_a_shot_descriptor(tmp_path: Path, made: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills while a shot descriptor is written: one message, and every descriptor
    on disk is still whole JSON (a half file would be read back as the shot's record)."""
    import builtins
    import io

    project = _copy(made, tmp_path / "p")
    _edit_screenplay(project, lambda d: d["episodes"][0]["scenes"][0]["shots"][1]["lines"][0].__setitem__(
        "text", "改过的台词，重新合成。"))
    real_open = io.open
    hit: list[str] = []

    class HalfThenFull(io.FileIO):
        """What a full disk does to a write: part of the data lands, then ENOSPC."""

        def write(self, b: Any) -> int:
            data = bytes(b)
            super().write(data[: len(data) // 2])
            hit.append(str(self.name))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.name))

    def full_disk_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        p = Path(os.fsdecode(file)) if isinstance(file, (str, bytes, os.PathLike)) else None
        if p is not None and p.parent.name == "shots" and ".json" in p.name and ("w" in mode or "x" in mode):
            raw = HalfThenFull(p, "w")
            return raw if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw), encoding=k.get("encoding"),
                                                            write_through=True)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_disk_open)
    monkeypatch.setattr(io, "open", full_disk_open)
    assert main(["-q", "synth", str(project)]) == 1
    monkeypatch.undo()
    assert hit, "the simulated full disk was never reached: the test would prove nothing"
    shots = project / "synth" / "ep01" / "shots"
    for meta in shots.glob("*.json"):
        json.loads(meta.read_text(encoding="utf-8"))  # every descriptor on disk is whole
    assert not [p.name for p in shots.iterdir() if ".tmp" in p.name]  # no temporary file left


def test_synth_itself_refuses_an_id_leading_out(tmp_path: Path) -> None:
    """The write side: a Series made in code without validation cannot make synth write outside out_dir."""
    from agents.base import RunContext
    from agents.synth import SynthAgent, SynthInput
    from core.config import Config
    from core.screenplay import Episode, Line, Scene, Shot

    shot = Shot(id="k01", seconds=0.5, lines=[Line(speaker="阿Q", text="好。")])
    shot.__dict__["id"] = "../../../../outside/settings"  # bypasses validation, as code building a Series may
    series = Series(title="t", episodes=[Episode(number=1, scenes=[Scene(id="s1", shots=[shot])])])
    out = tmp_path / "p" / "synth" / "ep01"
    with pytest.raises(InputError):
        SynthAgent()(SynthInput(series=series, episode=1, out_dir=out, width=96, height=160, tts="silence"),
                     RunContext(config=Config()))
    assert not (tmp_path / "outside").exists()  # from out_dir/shots/, four "../" lead to tmp_path
