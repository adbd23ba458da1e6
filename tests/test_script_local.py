"""The local engine's plumbing with a tiny random transformers model built from a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.base import RunContext
from agents.script import ScriptAgent, ScriptInput
from agents.script.llm.engine import CastPlan
from agents.script.llm.local import TransformersClient, open_local_client
from agents.script.llm.structured import ask_json
from core.config import Config
from core.errors import ConfigError, MissingDependencyError, ModelError
from core.usage import UsageStore

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

NOVEL = "第一章 开端\n    “你来了！”阿宝道。\n    他点点头。\n第二章 结局\n    “走吧。”阿宝说。\n"


def _tiny_model(folder: Path, *, positions: int = 4096, chat_template: bool = False) -> Path:
    """A 2-layer Llama with a character-level tokenizer: random weights, real save/load code paths."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = sorted(set('{}[]":,. 0123456789abcdefghijklmnopqrstuvwxyz' + NOVEL + "你我他的了是人在有这个上们来到时大地为子中说生国年着就那和要"))
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    if chat_template:
        fast.chat_template = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<s>{% endif %}"
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=positions,
                      bos_token_id=1, eos_token_id=2, pad_token_id=3)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def test_loads_from_folder_and_generates(tiny: Path) -> None:
    client = open_local_client(tiny, device="cpu", max_new_tokens=12)
    assert isinstance(client, TransformersClient) and client.device == "cpu" and client.concurrency == 1
    c = client.complete([{"role": "user", "content": "你来了"}], max_tokens=8)
    assert c.tokens_in > 3 and 1 <= c.tokens_out <= 8 and c.model == tiny.name
    # deterministic: greedy decoding
    assert client.complete([{"role": "user", "content": "你来了"}], max_tokens=8).text == c.text


def test_chat_template_is_used(tmp_path: Path) -> None:
    folder = _tiny_model(tmp_path / "chat", chat_template=True)
    client = TransformersClient(folder, device="cpu", max_new_tokens=4)
    ids = client._prompt_ids([{"role": "user", "content": "他"}])
    assert ids.shape[-1] == 4  # <s> 他 </s> <s>


def test_garbage_output_is_repaired_then_fails_cleanly(tiny: Path) -> None:
    client = TransformersClient(tiny, device="cpu", max_new_tokens=10)
    seen: list[int] = []
    with pytest.raises(ModelError, match="no valid characters reply after 3 attempts"):
        ask_json(client, [{"role": "user", "content": "给我人物"}], CastPlan,
                 repair_prompt=lambda err: f"改正：{err}", on_completion=lambda c, a: seen.append(a),
                 attempts=3, what="characters reply")
    assert seen == [1, 2, 3]


def test_agent_local_engine_records_usage_and_raises_model_error(tiny: Path, tmp_path: Path) -> None:
    cfg = Config()
    cfg.llm.local_model_path = str(tiny)
    cfg.llm.fallback = "none"
    cfg.device = "cpu"
    with UsageStore(tmp_path / "u.sqlite") as store:
        ctx = RunContext(config=cfg, usage=store)
        store.start_run("t", run_id=ctx.run_id)
        with pytest.raises(ModelError, match="no valid"):
            ScriptAgent(price_lookup=lambda m, u, d: None)(ScriptInput(source=NOVEL, engine="local", episodes=1), ctx)
        rows = list(store.events(ctx.run_id))
    units = sorted({r["unit"] for r in rows})
    assert units == ["cpu_second", "input_token", "output_token"]  # paid-for work is on the books despite the failure
    assert len([r for r in rows if r["unit"] == "input_token"]) == 2  # the first level, asked twice (a tiny model's budget)
    assert all(r["vendor"] == "" and r["device"] == "cpu" for r in rows)
    assert all("cpu_time_s" in r["detail"] for r in rows if r["unit"] == "cpu_second")


def test_a_tiny_local_model_falls_back_to_the_offline_engine_by_default(tiny: Path) -> None:
    from agents.script import ENGINES
    from agents.script.llm.engine import LLMEngine
    from tests.support.registries import registered

    def local(inp: ScriptInput, ctx: RunContext, agent: ScriptAgent) -> LLMEngine:  # short replies: a fast test
        return LLMEngine(TransformersClient(tiny, device="cpu", max_new_tokens=8))

    ctx = RunContext(config=Config())
    with registered(ENGINES, "tiny-local", local):
        result = ScriptAgent()(ScriptInput(source=NOVEL, engine="tiny-local", episodes=1), ctx)
    assert result.output.engine.endswith("+offline") and result.output.episodes
    assert any("filled by the offline engine" in n for n in result.notes)


def test_context_overflow_and_bad_paths(tmp_path: Path) -> None:
    short = _tiny_model(tmp_path / "short", positions=16)
    client = TransformersClient(short, device="cpu")
    with pytest.raises(ModelError, match="context"):
        client.complete([{"role": "user", "content": "你" * 40}])
    with pytest.raises(ConfigError, match="does not exist"):
        open_local_client(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="config.json"):
        open_local_client(tmp_path / "empty")
    with pytest.raises(ConfigError, match="needs a model"):
        ScriptAgent()(ScriptInput(source=NOVEL, engine="local"), RunContext(config=Config()))
    # a damaged GGUF fails on its header, before any native code (or the runtime check) runs
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(ModelError, match="too short to be a GGUF model"):
        open_local_client(gguf)
    # a valid GGUF with no runtime installed names the extra to install
    from agents.script.llm.gguf import write_probe_model

    valid = write_probe_model(tmp_path / "probe.gguf")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="llama-cpp-python"):
            open_local_client(valid)
