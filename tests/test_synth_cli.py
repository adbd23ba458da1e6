"""`reelforge synth`: engines, dry-run quote, a whole series with a status per episode, review actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.synth import EpisodeRender
from core.screenplay import Character, Episode, Line, Scene, Series, Shot
from core.workspace import Workspace
from ui.cli import main


def _project(tmp_path: Path) -> Path:
    def ep(n: int) -> Episode:
        shots = [Shot(id=f"e{n:02d}s01k00", seconds=1.6, visual_prompt="未庄街景"),
                 Shot(id=f"e{n:02d}s01k01", characters=["阿Q"], lines=[Line(speaker="阿Q", text="第{n}集，我来了。")])]
        return Episode(number=n, title=f"第{n}回", scenes=[Scene(id=f"e{n:02d}s01", place="未庄", shots=shots)])

    ws = Workspace(tmp_path / "proj").create({"studio": {"width": 180, "height": 320, "tts": "silence"}})
    Series(title="测试剧", characters=[Character(name="阿Q")], episodes=[ep(1), ep(2)]).save(ws.screenplay_path)
    return ws.root


def test_synth_cli_series_batch_review_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proj = _project(tmp_path)
    assert main(["-q", "synth", str(proj), "--all-episodes", "--engine", "animatic"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[:2] for ln in out] == [["ep01", "done"], ["ep02", "done"]]
    render = EpisodeRender.load(proj / "synth" / "ep02" / "render.json")
    assert render.engine == "animatic" and render.tts_engine == "silence" and render.width == 180
    assert main(["-q", "synth", str(proj), "--episode", "2", "--approve", "e02s01k00"]) == 0
    assert EpisodeRender.load(proj / "synth" / "ep02" / "render.json").shots[0].review == "approved"
    assert main(["-q", "synth", str(proj), "--episode", "2", "--edit-prompt", "e02s01k01=阿Q在酒店门口"]) == 0
    assert main(["-q", "synth", str(proj), "--episode", "2", "--shot-setting", "e02s01k01:steps=6",
                 "--shot-setting", "e02s01k01:guidance=4.5"]) == 0
    review = json.loads((proj / "synth" / "ep02" / "review.json").read_text(encoding="utf-8"))
    assert review["shots"]["e02s01k01"]["prompt"] == "阿Q在酒店门口"
    assert review["shots"]["e02s01k01"]["settings"] == {"steps": 6, "guidance": 4.5}
    # a dry run with an image model quotes and generates nothing
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")
    capsys.readouterr()
    assert main(["-q", "synth", str(proj), "--episode", "1", "--engine", "diffusers", "--image-model", str(model),
                 "--steps", "4", "--size", "512x896", "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert "Quote" in table and "images 2" in table and "diffusers" in table
    assert not (proj / "synth" / "ep01" / "keyframes").exists()
    # asking for the diffusers engine without a model fails with the fix
    assert main(["-q", "synth", str(proj), "--engine", "diffusers"]) == 1
    assert "image model" in capsys.readouterr().err
