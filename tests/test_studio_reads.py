"""A make records what it read: an edit to screenplay.json made while synth runs is rendered by the
next make; `script --project` waits its turn for the project lock; make's review gate."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.base import AgentResult, RunContext
from agents.cut import ReviewPending
from agents.studio import Studio, StudioSettings
from agents.synth import EpisodeRender, SynthAgent, SynthInput, review_shot
from core.config import load_config
from core.workspace import Workspace
from models.modelcard import is_placeholder_licence
from ui.cli import main

EDITED = "这一句台词在合成时被改过了。"


@pytest.fixture()
def novel(tmp_path: Path, novels_dir: Path) -> Path:
    text = (novels_dir / "阿Q正传.txt").read_text(encoding="utf-8-sig")
    path = tmp_path / "阿Q正传_节选.txt"
    path.write_text(text[text.index("第二章"):text.index("第三章")], encoding="utf-8")
    return path


def _settings() -> StudioSettings:
    return StudioSettings(episodes=1, episode_seconds=20, width=180, height=320, tts="silence", qc=False)


def _edit_first_line(path: Path) -> str:
    sp = json.loads(path.read_text(encoding="utf-8"))
    shot = next(s for sc in sp["episodes"][0]["scenes"] for s in sc["shots"] if s["lines"])
    shot["lines"][0]["text"] = EDITED
    path.write_text(json.dumps(sp, ensure_ascii=False, indent=2), encoding="utf-8")
    return str(shot["id"])


class _EditsWhileRendering(SynthAgent):
    """A person saves an edit to screenplay.json while the synth stage runs."""

    edited: str = ""

    def run(self, inp: SynthInput, ctx: RunContext) -> AgentResult[EpisodeRender]:
        assert ctx.workspace is not None
        type(self).edited = _edit_first_line(ctx.workspace.screenplay_path)
        return super().run(inp, ctx)


def test_an_edit_made_during_synth_is_rendered_by_the_next_make(tmp_path: Path, novel: Path) -> None:
    project = tmp_path / "p"
    first = Studio(project, load_config(), agents={"synth": _EditsWhileRendering()}).make(novel, _settings())
    ws = Workspace(project)
    recorded = ws.manifest()["stages"]["synth:ep01"]["inputs"]["screenplay.json"]
    now = hashlib.sha256(ws.screenplay_path.read_bytes()).hexdigest()
    assert recorded != now  # the hash of what synth read, not of the file after the edit
    shot_id = _EditsWhileRendering.edited
    with sqlite3.connect(project / "usage.sqlite") as db:
        licences = list(db.execute("SELECT stage, engine, unit, licence FROM usage_events"))
    assert {row[0] for row in licences} >= {"script", "synth", "cut"}
    assert not [row for row in licences if is_placeholder_licence(row[3])]  # every record names a real licence
    render = EpisodeRender.load(ws.synth_dir(1) / "render.json")
    assert EDITED not in [ln.text for s in render.shots for ln in s.lines]  # it rendered what it had read
    second = Studio(project, load_config()).make(None, _settings())
    stages = {s.stage: s.status for s in second.stages}
    assert stages["synth:ep01"] == "done" and stages["cut:ep01"] == "done", stages
    render = EpisodeRender.load(ws.synth_dir(1) / "render.json")
    assert [ln.text for s in render.shots if s.id == shot_id for ln in s.lines][0] == EDITED
    assert ws.manifest()["stages"]["synth:ep01"]["inputs"]["screenplay.json"] == now
    third = Studio(project, load_config()).make(None, _settings())
    assert {s.stage: s.status for s in third.stages}["synth:ep01"] == "reused"
    assert first.run_id != second.run_id


def test_make_with_the_review_gate_stops_before_the_cut_and_names_the_shots(
        tmp_path: Path, novel: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    args = ["-q", "make", str(novel), "--project", str(project), "--episodes", "1", "--episode-seconds", "20",
            "--size", "180x320", "--tts", "silence", "--review-required"]
    assert main(args) == 1
    err = capsys.readouterr().err
    ws = Workspace(project)
    render = EpisodeRender.load(ws.synth_dir(1) / "render.json")
    assert "not approved in review" in err and all(s.id in err for s in render.shots[:10])
    assert not ws.episode_video(1).exists()
    for shot in render.shots:
        review_shot(ws.synth_dir(1), shot.id, "approve")
    assert main(args) == 0
    assert ws.episode_video(1).exists()
    # without the gate (the default) a make of the same project runs through
    assert main(args[:-1]) == 0
    cfg = load_config()
    cfg.review.required = True
    review_shot(ws.synth_dir(1), render.shots[0].id, "regenerate")
    with pytest.raises(ReviewPending, match=render.shots[0].id):
        Studio(project, cfg).make(None)


def test_script_into_a_project_honours_its_lock(tmp_path: Path, novel: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace(tmp_path / "p").create()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (ws.root / ".lock").write_text(str(holder.pid), encoding="utf-8")  # a make of this project is running
        args: list[Any] = ["-q", "script", str(novel), "--project", str(ws.root), "--episodes", "1"]
        assert main(args) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert not ws.screenplay_path.exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(args) == 0  # the holder is gone: its lock is stale and taken over
    assert ws.screenplay_path.exists() and not (ws.root / ".lock").exists()
