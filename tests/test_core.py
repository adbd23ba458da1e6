from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from core.config import load_config, parse_fps
from core.device import default_dtype, resolve_device
from core.errors import ConfigError, DeviceError, InputError, WorkspaceError
from core.screenplay import Episode, Line, Scene, Series, Shot, SourceSpan
from core.usage import UsageRecord, UsageStore
from core.workspace import Workspace


def test_device_auto_is_cpu_here_and_missing_cuda_raises() -> None:
    import torch

    dev = resolve_device("auto")
    assert dev.type in {"cpu", "cuda", "mps"}
    assert default_dtype(torch.device("cpu")) is torch.float32
    assert default_dtype(torch.device("cuda")) is torch.float16
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="cuda"):
            resolve_device("cuda")
    with pytest.raises(InputError, match="tpu"):
        resolve_device("tpu")


def test_config_file_and_env_override(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[render]\nwidth = 720\nheight = 1280\nfps = "30000/1001"\n[llm]\nmodel = "qwen"\n', encoding="utf-8")
    cfg = load_config(cfg_file, env={"REELFORGE_LLM__CONCURRENCY": "8", "REELFORGE_RENDER__CRF": "23"})
    assert (cfg.render.width, cfg.render.height, cfg.render.crf) == (720, 1280, 23)
    assert cfg.render.fps_fraction == Fraction(30000, 1001)
    assert cfg.llm.model == "qwen" and cfg.llm.concurrency == 8
    with pytest.raises(ConfigError, match="widht"):
        cfg_file.write_text("[render]\nwidht = 3\n", encoding="utf-8")
        load_config(cfg_file, env={})
    with pytest.raises(ConfigError, match="integer"):
        load_config(None, env={"REELFORGE_RENDER__CRF": "high"})


def test_parse_fps() -> None:
    assert parse_fps("29.97") == Fraction(30000, 1001)
    assert parse_fps("25") == 25
    with pytest.raises(ConfigError):
        parse_fps("0")
    with pytest.raises(ConfigError):
        parse_fps("fast")


def _series() -> Series:
    line = Line(speaker="阿Q", text="我们先前——比你阔的多啦！", source=SourceSpan(chapter=2, start=10, end=22))
    shot = Shot(id="e01s01k01", lines=[line])
    scene = Scene(id="e01s01", place="未庄", shots=[shot])
    return Series(title="阿Q正传", episodes=[Episode(number=1, scenes=[scene])])


def test_screenplay_json_is_utf8_and_round_trips(tmp_path: Path) -> None:
    s = _series()
    path = s.save(tmp_path / "screenplay.json")
    text = path.read_text(encoding="utf-8")
    assert "阿Q正传" in text and "\\u" not in text
    data = json.loads(text)
    assert data["episodes"][0]["scenes"][0]["shots"][0]["lines"][0]["speaker"] == "阿Q"
    assert Series.load(path) == s


def test_screenplay_rejects_unknown_and_invalid_with_path() -> None:
    data = json.loads(_series().to_json())
    data["episodes"][0]["scenes"][0]["shots"][0]["lines"][0]["kind"] = "song"
    data["episodes"][0]["scenes"][0]["bogus"] = 1
    with pytest.raises(InputError) as err:
        Series.from_data(data)
    msg = str(err.value)
    assert "episodes[0].scenes[0].shots[0].lines[0].kind" in msg
    assert "episodes[0].scenes[0].bogus" in msg
    with pytest.raises(InputError, match="not valid JSON"):
        Series.from_json("{")


def test_usage_store_is_exact_and_refuses_floats(tmp_path: Path) -> None:
    with UsageStore(tmp_path / "usage.sqlite") as store:
        rid = store.start_run("test")
        store.add(rid, [UsageRecord(stage="synth", engine="espeak-ng", unit="audio_second",
                                    quantity=Decimal("1.234"), licence="GPL-3.0")])
        (event,) = list(store.events(rid))
        assert event["quantity"] == Decimal("1.234") and event["licence"] == "GPL-3.0"
    with pytest.raises(TypeError):
        UsageRecord(stage="x", engine="y", unit="image", quantity=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unit"):
        UsageRecord(stage="x", engine="y", unit="parsec", quantity=Decimal(1))


def test_workspace_freshness_and_hand_edits(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p").create({"episodes": 1})
    src = ws.source_dir / "novel.txt"
    src.write_text("第一章 开头", encoding="utf-8")
    out = ws.screenplay_path
    out.write_text("{}", encoding="utf-8")
    params = {"engine": "offline"}
    assert not ws.stage_state("script", [src], params).fresh
    ws.mark_done("script", "r1", [src], params, [out])
    assert ws.stage_state("script", [src], params).fresh
    out.write_text('{"edited": true}', encoding="utf-8")  # a person edits the output
    state = ws.stage_state("script", [src], params)
    assert state.fresh and state.edited_outputs == ("screenplay.json",)
    assert not ws.stage_state("script", [src], {"engine": "llm"}).fresh
    src.write_text("第一章 改了", encoding="utf-8")
    assert "inputs changed" in ws.stage_state("script", [src], params).reason
    out.unlink()
    ws.mark_done("script", "r2", [src], params, [])
    with ws.lock():
        with pytest.raises(WorkspaceError, match="in use"):
            import os
            import subprocess
            import sys

            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            try:
                (ws.root / ".lock").write_text(str(child.pid))
                with ws.lock():
                    pass
            finally:
                child.kill()
                child.wait()
                (ws.root / ".lock").write_text(str(os.getpid()))
    assert not (ws.root / ".lock").exists()
