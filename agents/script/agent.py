"""The script agent: a novel, an outline or a logline in; a typed :class:`~core.screenplay.Series` out."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import ClassVar

from agents.base import Agent, AgentResult, RunContext
from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.pricing import PriceLookup
from agents.script.reader import NovelText, resolve_source
from core import prices
from core.errors import StageError
from core.screenplay import Series

log = logging.getLogger(__name__)


def verify_spans(series: Series, text: str) -> int:
    """Every line with a source span must be found in it; returns how many lines were checked."""
    checked = 0
    for ep in series.episodes:
        for shot in ep.shots():
            for line in shot.lines:
                src = line.source
                if src is None:
                    continue
                if src.end > len(text) or line.text not in text[src.start:src.end]:
                    raise StageError(
                        "script",
                        f"line {line.text[:30]!r} of shot {shot.id} is not in the source at "
                        f"{src.start}:{src.end}",
                        hint="this is a bug in the script engine; please report it with the novel",
                    )
                checked += 1
    return checked


class ScriptAgent(Agent[ScriptInput, Series]):
    """Adapts a novel (txt/epub/docx/md) or a logline/outline into an episodic micro-drama screenplay."""

    name: ClassVar[str] = "script"
    description: ClassVar[str] = "小说/IP -> 分集微短剧剧本 (novel or IP -> episodic micro-drama screenplay)"

    def __init__(self, *, price_lookup: PriceLookup | None = None, language: str = "zh",
                 draft_path: str | Path | None = None) -> None:
        self._price_lookup = price_lookup
        self.language = language
        self.draft_path = draft_path

    # -- what the engines ask of the agent (agents/script/engines.py) ----------------------------
    def price_lookup(self, ctx: RunContext) -> PriceLookup | None:
        if self._price_lookup is not None:
            return self._price_lookup
        return prices.price_lookup(ctx.config.ledger.price_book)

    def draft_file(self, ctx: RunContext) -> Path | None:
        if self.draft_path is not None:
            return Path(self.draft_path)
        if ctx.workspace is not None:
            return ctx.workspace.root / "script_draft.json"
        return None

    def engine(self, inp: ScriptInput, ctx: RunContext) -> ScriptEngine:
        """The engine ``inp.engine`` from :data:`agents.script.ENGINES` (built-in or a plug-in)."""
        from agents.script import ENGINES

        engine = ENGINES.create(inp.engine, inp, ctx, self)
        if not isinstance(engine, ScriptEngine):
            raise StageError("script", f"script engine {inp.engine!r} made a {type(engine).__name__}, "
                             "not a ScriptEngine", hint="a plug-in must return an agents.script.ScriptEngine")
        return engine

    # -- run --------------------------------------------------------------------------------
    def run(self, inp: ScriptInput, ctx: RunContext) -> AgentResult[Series]:
        ctx.step(0.0, "reading the source / 读取原文")
        novel = resolve_source(inp.source)
        engine = self.engine(inp, ctx)
        log.info("script engine %s on %s (%d characters)", engine.name, novel.path or "literal text", len(novel.text))
        try:
            result: EngineResult = engine.generate(novel, inp, ctx)
        finally:
            close = getattr(engine, "close", None)
            if close is not None:
                close()  # a local model's worker process ends with the run
        checked = verify_spans(result.series, novel.text)
        if not result.report.get("recorded"):
            ctx.record(result.usage)
        files = self._write(novel, result.series, ctx)
        cut = result.report.get("cut_lines") or []
        if cut and ctx.workspace is not None:
            # the quoted lines no episode could hold, with why: a creator can ask for more episodes
            path = ctx.workspace.root / "script_cuts.json"
            path.write_text(json.dumps(cut, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            files.append(path)
        ctx.step(1.0, f"{len(result.series.episodes)} episodes / {len(result.series.episodes)} 集")
        log.info("screenplay: %d episodes, %d shots, %d traced lines", len(result.series.episodes),
                 sum(len(e.shots()) for e in result.series.episodes), checked)
        return AgentResult(output=result.series, engine=engine.name, files=files, usage=list(result.usage),
                           notes=list(ctx.notes))

    @staticmethod
    def _write(novel: NovelText, series: Series, ctx: RunContext) -> list[Path]:
        ws = ctx.workspace
        if ws is None:
            return []
        files: list[Path] = []
        if novel.path:
            ws.source_dir.mkdir(parents=True, exist_ok=True)
            target = ws.source_dir / Path(novel.path).name
            if not target.exists():
                shutil.copyfile(novel.path, target)  # the original bytes, as the manifest hashes them
        files.append(series.save(ws.screenplay_path))
        return files
