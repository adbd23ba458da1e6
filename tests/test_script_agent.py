"""The agent interface, the exports and the ``reelforge script`` subcommand."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from agents.base import RunContext
from agents.script import FORMATS, ScriptAgent, ScriptInput, export, verify_spans
from agents.script.cli import register
from agents.script.export import (
    SHOTLIST_COLUMNS,
    format_for,
    to_fountain,
    to_markdown,
    to_shotlist_csv,
)
from core.config import Config
from core.errors import InputError, StageError
from core.screenplay import Series, json_schema
from core.usage import UsageStore
from core.workspace import Workspace

_PLACES = ("悦来客栈", "醉仙楼", "城隍庙", "聚义厅", "落霞山", "青石镇", "白云观", "望江亭", "铁匠铺", "状元府")
_NUMS = "一二三四五六七八九十"
NOVEL = "".join(
    f"第{_NUMS[n]}章 第{_NUMS[n]}夜\n"
    + "".join(f"    张三来到{p}，见李四坐在窗边，手里攥着{_NUMS[k]}封信。\n    “你来晚了{_NUMS[k]}次！”李四冷冷地说。\n"
              f"    张三笑道：“路上有事，耽搁了{_NUMS[k]}个时辰。”\n    张三猛地拔刀，追着黑影冲出了{p}！\n"
              for k, p in enumerate(_PLACES))
    for n in range(3)
)


@pytest.fixture()
def novel_file(tmp_path: Path) -> Path:
    path = tmp_path / "夜话.txt"
    path.write_text(NOVEL, encoding="utf-8")
    return path


@pytest.fixture()
def series(novel_file: Path) -> Series:
    return ScriptAgent()(ScriptInput(source=novel_file, episodes=3, episode_seconds=30), RunContext(config=Config())).output


def test_agent_records_usage_progress_and_writes_the_workspace(novel_file: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "proj").create()
    steps: list[tuple[float, str]] = []
    with UsageStore(ws.usage_db) as store:
        ctx = RunContext(config=Config(), workspace=ws, usage=store, progress=lambda f, m: steps.append((f, m)))
        store.start_run("test", run_id=ctx.run_id)
        agent = ScriptAgent()
        assert agent.name == "script"
        result = agent(ScriptInput(source=novel_file, episodes=3, episode_seconds=30), ctx)
        rows = list(store.events(ctx.run_id))
    assert result.engine == "offline" and len(result.output.episodes) == 3
    assert [r["unit"] for r in rows] == ["cpu_second"]
    assert rows[0]["quantity"] > 0 and rows[0]["quantity"] == rows[0]["seconds"] and rows[0]["stage"] == "script"
    assert steps[0][0] == 0.0 and steps[-1][0] == 1.0
    assert [f for f, _m in steps] == sorted(f for f, _m in steps)
    assert ws.screenplay_path in result.files and Series.load(ws.screenplay_path) == result.output
    assert (ws.source_dir / novel_file.name).read_bytes() == novel_file.read_bytes()
    assert result.seconds > 0


def test_input_is_checked_up_front(novel_file: Path) -> None:
    ctx = RunContext(config=Config())
    for bad, msg in (({"episodes": 0}, "between 1"), ({"episode_seconds": 5}, "episode_seconds"),
                     ({"engine": "gpt"}, "unknown script engine"), ({"episodes": 2.5}, "whole number")):
        with pytest.raises(InputError, match=msg):
            ScriptAgent()(ScriptInput(source=novel_file, **bad), ctx)  # type: ignore[arg-type]


def test_verify_spans_catches_a_broken_line(series: Series) -> None:
    assert verify_spans(series, NOVEL) > 0
    shot = next(sh for ep in series.episodes for sh in ep.shots() if sh.lines)
    shot.lines[0].text = "原文里没有这句话"
    with pytest.raises(StageError, match="not in the source"):
        verify_spans(series, NOVEL)


def test_json_is_utf8_schema_exported_and_strict(series: Series, tmp_path: Path) -> None:
    path = export(series, tmp_path / "s.json")
    text = path.read_text(encoding="utf-8")
    assert "张三" in text and "\\u" not in text
    data = json.loads(text)
    line = data["episodes"][0]["scenes"][0]["shots"][1]["lines"][0]
    assert set(line) >= {"speaker", "text", "kind", "source"}
    assert {"name", "aliases"} <= set(data["characters"][0])
    schema = json_schema()
    assert "Series" in json.dumps(schema) or schema.get("title") == "Series"
    data["episodes"][0]["scenes"][0]["shots"][1]["lines"][0]["kind"] = "song"
    with pytest.raises(InputError, match=r"episodes\[0\]\.scenes\[0\]\.shots\[1\]\.lines\[0\]\.kind"):
        Series.from_data(data)


def test_text_exports(series: Series) -> None:
    fountain = to_fountain(series)
    assert fountain.startswith("Title: 夜话")
    assert "EXT. " in fountain or "INT. " in fountain
    assert "@张三" in fountain and "@旁白 (V.O.)" in fountain
    md = to_markdown(series)
    assert "## 第1集" in md and "△" in md and "**张三**" in md
    assert "付费卡点" in md  # three episodes: one pay point
    rows = list(csv.reader(io.StringIO(to_shotlist_csv(series))))
    assert tuple(rows[0]) == SHOTLIST_COLUMNS
    assert len(rows) - 1 == sum(len(ep.shots()) for ep in series.episodes)


def test_docx_and_xlsx(series: Series, tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    openpyxl = pytest.importorskip("openpyxl")
    doc = docx.Document(str(export(series, tmp_path / "s.docx")))
    paras = [p.text for p in doc.paragraphs]
    assert any(p.startswith("场次 1-1") and "景" in p and "地点：" in p for p in paras)
    assert any(p.startswith("人物：") for p in paras)
    assert any(p.startswith("△ ") for p in paras)
    assert any(p.startswith("张三") and "：" in p for p in paras)
    assert any("【付费卡点】" in p for p in paras)
    wb = openpyxl.load_workbook(export(series, tmp_path / "s.xlsx"))
    assert wb.sheetnames == ["分镜表", "人物", "分集"]
    sheet = wb["分镜表"]
    assert [c.value for c in sheet[1]] == list(SHOTLIST_COLUMNS)
    assert sheet.max_row - 1 == sum(len(ep.shots()) for ep in series.episodes)


def test_format_is_named_or_taken_from_the_suffix() -> None:
    assert FORMATS == ("json", "fountain", "md", "docx", "csv", "xlsx")
    assert format_for("a.FOUNTAIN") == "fountain" and format_for("a.json", "md") == "md"
    with pytest.raises(InputError, match="suffix"):
        format_for("a.pdf")
    with pytest.raises(InputError, match="unknown format"):
        format_for("a.json", "pdf")


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="reelforge")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli(novel_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> None:
    # core.config reads every REELFORGE_* variable as a setting; the test suite's data override is not one
    monkeypatch.delenv("REELFORGE_SHARED_DATA", raising=False)
    out = tmp_path / "out" / "s.json"
    assert _cli("script", str(novel_file), "-o", str(out), "--episodes", "2", "--episode-seconds", "30", "--quiet") == 0
    assert len(Series.load(out).episodes) == 2
    assert "2 集" in capsys.readouterr().out
    md = tmp_path / "s.txt"
    assert _cli("script", str(novel_file), "-o", str(md), "--format", "md", "--episodes", "1", "--quiet") == 0
    assert md.read_text(encoding="utf-8").startswith("# 夜话")
    proj = tmp_path / "proj"
    assert _cli("script", str(novel_file), "--project", str(proj), "--episodes", "1", "--quiet") == 0
    assert (proj / "screenplay.json").exists() and (proj / "usage.sqlite").exists()
    # whole novel when --episodes is left out
    assert _cli("script", str(novel_file), "-o", str(out), "--quiet") == 0
    assert len(Series.load(out).episodes) >= 3
    # errors: a clear message, exit code 2
    assert _cli("script", str(tmp_path / "missing.txt"), "-o", str(out), "--quiet") == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert _cli("script", str(novel_file), "--quiet") == 2
    assert "-o" in capsys.readouterr().err
    assert _cli("script", str(novel_file), "-o", str(out), "--engine", "openai", "--quiet") == 2
    assert "base_url" in capsys.readouterr().err
    schema = tmp_path / "schema.json"
    assert _cli("script", "--schema", str(schema)) == 0
    assert json.loads(schema.read_text(encoding="utf-8"))["title"] == "Series"
