"""The script agent: novel or IP -> episodic micro-drama screenplay (剧本智能体).

Python API::

    from agents.script import ScriptAgent, ScriptInput, read_novel
    result = ScriptAgent()(ScriptInput(source="西游记.txt", episodes=10), ctx)
    result.output.save("screenplay.json")

Engines (the registry :data:`ENGINES`; factories in :mod:`agents.script.engines`): ``offline``
(rules, no model, deterministic), ``openai`` (any OpenAI-compatible endpoint from ``[llm]``
config), ``local`` (a transformers folder or a GGUF file). A third-party engine registers as the
entry point ``script-engine.<name>`` in the group ``reelforge.plugins``.
With ``ScriptInput(hybrid=True)`` (CLI ``--hybrid``) an LLM engine writes the offline
screenplay and asks its model only about the speakers the rules are unsure of
(:mod:`agents.script.hybrid`).
"""

from __future__ import annotations

from agents.script.agent import ScriptAgent, verify_spans
from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.export import FORMATS, export
from agents.script.pricing import PriceLookup
from agents.script.reader import NovelText, read_novel, resolve_source
from core.registry import Registry

ENGINES: Registry[ScriptEngine] = Registry("script-engine", "script engines / 剧本引擎")
ENGINES.add("offline", "agents.script.engines:offline",
            description="rules, no model, deterministic; every line traceable to the novel")
ENGINES.add("openai", "agents.script.engines:openai",
            description="any OpenAI-compatible endpoint ([llm] base_url, model, api key), hierarchical and editable",
            install="set [llm] base_url, model and api_key in the config (or --base-url, --model)",
            probe="agents.script.engines:probe")
ENGINES.add("local", "agents.script.engines:local",
            description="a local transformers folder or .gguf file ([llm] local_model_path)",
            install="set [llm] local_model_path; a folder needs pip install 'reelforge[gpu]', a .gguf file "
                    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF' pip install 'reelforge[llm-local]'",
            probe="agents.script.engines:probe")

__all__ = [
    "ENGINES",
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
