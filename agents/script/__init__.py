"""The script agent: novel or IP -> episodic micro-drama screenplay (剧本智能体).

Python API::

    from agents.script import ScriptAgent, ScriptInput, read_novel
    result = ScriptAgent()(ScriptInput(source="西游记.txt", episodes=10), ctx)
    result.output.save("screenplay.json")

Engines: ``offline`` (rules, no model, deterministic), ``openai`` (any OpenAI-compatible
endpoint from ``[llm]`` config), ``local`` (a transformers folder or a GGUF file). With
``ScriptInput(hybrid=True)`` (CLI ``--hybrid``) an LLM engine writes the offline screenplay and
asks its model only about the speakers the rules are unsure of (:mod:`agents.script.hybrid`).
"""

from __future__ import annotations

from agents.script.agent import ScriptAgent, verify_spans
from agents.script.base import ENGINE_NAMES, EngineResult, ScriptEngine, ScriptInput
from agents.script.export import FORMATS, export
from agents.script.pricing import PriceLookup
from agents.script.reader import NovelText, read_novel, resolve_source

__all__ = [
    "ENGINE_NAMES",
    "FORMATS",
    "EngineResult",
    "NovelText",
    "PriceLookup",
    "ScriptAgent",
    "ScriptEngine",
    "ScriptInput",
    "export",
    "read_novel",
    "resolve_source",
    "verify_spans",
]
