"""The built-in script engines' factories, registered in :data:`agents.script.ENGINES`.

A factory is called as ``factory(inp, ctx, agent)`` with the :class:`~agents.script.base.ScriptInput`,
the run's :class:`~agents.base.RunContext` and the :class:`~agents.script.agent.ScriptAgent` (for its
language, price lookup and draft file), and returns a :class:`~agents.script.base.ScriptEngine`.
A third-party engine registers the same way, as the entry point ``script-engine.<name>`` in the
group ``reelforge.plugins``. Each factory imports its engine when called, so listing the engines
imports no model runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from agents.base import RunContext
    from agents.script.agent import ScriptAgent
    from agents.script.base import ScriptEngine, ScriptInput
    from core.config import Config


def offline(inp: ScriptInput, ctx: RunContext, agent: ScriptAgent) -> ScriptEngine:
    """Rules, no model, deterministic."""
    from agents.script.offline import OfflineEngine

    return OfflineEngine()


def openai(inp: ScriptInput, ctx: RunContext, agent: ScriptAgent) -> ScriptEngine:
    """Any OpenAI-compatible endpoint from the ``[llm]`` config."""
    from agents.script.llm.client import OpenAICompatClient
    from agents.script.llm.engine import LLMEngine
    from agents.script.pricing import vendor_of

    cfg = ctx.config.llm
    client = OpenAICompatClient(
        cfg.base_url, cfg.model, cfg.api_key, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
        concurrency=cfg.concurrency, vendor=vendor_of(cfg.base_url), on_fallback=ctx.warn,
    )
    return LLMEngine(client, price_lookup=agent.price_lookup(ctx), language=agent.language,
                     draft_path=agent.draft_file(ctx), hybrid_threshold=_hybrid(inp),
                     fallback=cfg.fallback)


def _hybrid(inp: ScriptInput) -> float | None:
    """``--hybrid``: the LLM decides only the speakers the rules are less sure of than this."""
    from agents.script.hybrid import DEFAULT_THRESHOLD

    return DEFAULT_THRESHOLD if inp.hybrid else None


def local(inp: ScriptInput, ctx: RunContext, agent: ScriptAgent) -> ScriptEngine:
    """A local transformers folder or GGUF file (``[llm] local_model_path``)."""
    from agents.script.llm.engine import LLMEngine
    from agents.script.llm.local import open_local_client

    path = ctx.config.llm.local_model_path
    if not path:
        raise ConfigError("engine 'local' needs a model",
                          hint="set [llm] local_model_path to a transformers folder or .gguf file")
    client = open_local_client(path, device=ctx.config.device)
    return LLMEngine(client, price_lookup=agent.price_lookup(ctx), language=agent.language,
                     draft_path=agent.draft_file(ctx), hybrid_threshold=_hybrid(inp),
                     fallback=ctx.config.llm.fallback)


def probe(name: str, config: Config | None = None) -> str:
    """For ``reelforge doctor``: "" when engine ``name`` can run with ``config``'s [llm] settings."""
    import importlib.util
    from pathlib import Path

    from core.config import Config

    llm = (config or Config()).llm
    if name == "openai":
        return "" if llm.base_url else "[llm] base_url is not set"
    if name == "local":
        if not llm.local_model_path:
            return "[llm] local_model_path is not set"
        path = Path(llm.local_model_path).expanduser()
        if not path.exists():
            return f"local model {str(path)!r} does not exist"
        module = "llama_cpp" if path.suffix.lower() == ".gguf" else "transformers"
        return "" if importlib.util.find_spec(module) is not None else f"missing {module}"
    return ""
