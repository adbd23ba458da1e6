"""The script agent: a novel, an outline or a logline in; a typed :class:`~core.screenplay.Series` out."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from agents.base import Agent, AgentResult, RunContext
from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.pricing import PriceLookup, vendor_of
from agents.script.reader import NovelText, resolve_source
from core import prices
from core.errors import ConfigError, StageError
from core.screenplay import Series

log = logging.getLogger(__name__)

EngineFactory = Callable[[ScriptInput, RunContext], ScriptEngine]


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

    def __init__(self, *, engines: dict[str, EngineFactory] | None = None,
                 price_lookup: PriceLookup | None = None, language: str = "zh",
                 draft_path: str | Path | None = None) -> None:
        self._factories: dict[str, EngineFactory] = {
            "offline": self._offline, "openai": self._openai, "local": self._local,
        }
        self._factories.update(engines or {})
        self._price_lookup = price_lookup
        self.language = language
        self.draft_path = draft_path

    # -- engines ----------------------------------------------------------------------------
    @staticmethod
    def _offline(inp: ScriptInput, ctx: RunContext) -> ScriptEngine:
        from agents.script.offline import OfflineEngine

        return OfflineEngine()

    def _prices(self, ctx: RunContext) -> PriceLookup | None:
        if self._price_lookup is not None:
            return self._price_lookup
        return prices.price_lookup(ctx.config.ledger.price_book)

    def _draft(self, ctx: RunContext) -> Path | None:
        if self.draft_path is not None:
            return Path(self.draft_path)
        if ctx.workspace is not None:
            return ctx.workspace.root / "script_draft.json"
        return None

    def _openai(self, inp: ScriptInput, ctx: RunContext) -> ScriptEngine:
        from agents.script.llm.client import OpenAICompatClient
        from agents.script.llm.engine import LLMEngine

        cfg = ctx.config.llm
        client = OpenAICompatClient(
            cfg.base_url, cfg.model, cfg.api_key, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
            concurrency=cfg.concurrency, vendor=vendor_of(cfg.base_url), on_fallback=ctx.warn,
        )
        return LLMEngine(client, price_lookup=self._prices(ctx), language=self.language, draft_path=self._draft(ctx))

    def _local(self, inp: ScriptInput, ctx: RunContext) -> ScriptEngine:
        from agents.script.llm.engine import LLMEngine
        from agents.script.llm.local import open_local_client

        path = ctx.config.llm.local_model_path
        if not path:
            raise ConfigError("engine 'local' needs a model", hint="set [llm] local_model_path to a transformers folder or .gguf file")
        client = open_local_client(path, device=ctx.config.device)
        return LLMEngine(client, price_lookup=self._prices(ctx), language=self.language, draft_path=self._draft(ctx))

    # -- run --------------------------------------------------------------------------------
    def run(self, inp: ScriptInput, ctx: RunContext) -> AgentResult[Series]:
        ctx.step(0.0, "reading the source / 读取原文")
        novel = resolve_source(inp.source)
        engine = self._factories[inp.engine](inp, ctx)
        log.info("script engine %s on %s (%d characters)", engine.name, novel.path or "literal text", len(novel.text))
        result: EngineResult = engine.generate(novel, inp, ctx)
        checked = verify_spans(result.series, novel.text)
        if not result.report.get("recorded"):
            ctx.record(result.usage)
        files = self._write(novel, result.series, ctx)
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
