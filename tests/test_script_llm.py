"""LLM engines against a loopback OpenAI-compatible server (real HTTP, scripted trouble)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.base import RunContext
from agents.script import ScriptAgent, ScriptInput
from agents.script.llm.client import OpenAICompatClient
from agents.script.llm.engine import Draft, LLMEngine, clear_level
from agents.script.pricing import vendor_of
from agents.script.reader import literal_text
from core.config import Config
from core.errors import ConfigError, ModelError
from core.usage import UsageStore
from tests.support.fake_llm_server import FakeOpenAIServer, Reply, screenwriter, task_of

FAST = {"timeout_s": 0.4, "backoff_s": 0.01, "backoff_max_s": 0.05, "max_retries": 3}
NOVEL = "".join(
    f"第{n}章 第{n}夜\n"
    + "".join(f"    张三走进第{n}{k}号酒店，见李四坐在窗边。\n    “你来晚了{k}次。”李四冷冷地说。\n"
              f"    张三笑道：“路上有事{k}件。”\n    夜深了，两人各自回房{k}趟。\n" for k in range(8))
    for n in range(1, 4)
)


def _client(srv: FakeOpenAIServer, **kw: Any) -> OpenAICompatClient:
    opts = dict(FAST)
    opts.update(kw)
    return OpenAICompatClient(srv.url, "fake-model", "sk-test", **opts)  # type: ignore[arg-type]


def _ask(client: OpenAICompatClient, text: str = "[task:ping] hi") -> Any:
    return client.complete([{"role": "user", "content": text}], schema={"type": "object"})


def test_streaming_and_plain_completions_with_usage() -> None:
    with FakeOpenAIServer(lambda req, n: Reply(content='{"a": "你好"}')) as srv:
        c = _ask(_client(srv))
        assert c.text == '{"a": "你好"}' and c.tokens_out == len(c.text) and c.tokens_in > 0
        assert not c.estimated and c.attempts == 1
        assert srv.requests[0]["stream"] is True and srv.requests[0]["stream_options"] == {"include_usage": True}
        assert srv.requests[0]["response_format"]["type"] == "json_schema"
        c2 = _ask(_client(srv, stream=False))
        assert c2.text == c.text and srv.requests[1]["stream"] is False
    with FakeOpenAIServer(lambda req, n: Reply(content="好的", usage=False)) as srv:
        c3 = _ask(_client(srv))
        assert c3.estimated and c3.tokens_out == 3  # two CJK characters + 1


def test_retries_429_and_5xx_honouring_retry_after() -> None:
    def flaky(req: dict[str, Any], n: int) -> Reply:
        if n == 1:
            return Reply(status=429, headers={"Retry-After": "0.2"}, body='{"error":"slow down"}')
        if n == 2:
            return Reply(status=502, body="bad gateway")
        return Reply(content='{"ok": true}')

    with FakeOpenAIServer(flaky) as srv:
        t0 = time.perf_counter()
        c = _ask(_client(srv))
        assert c.attempts == 3 and srv.count == 3
        assert time.perf_counter() - t0 >= 0.2  # waited as the server asked


def test_gives_up_after_max_retries() -> None:
    with FakeOpenAIServer(lambda req, n: Reply(status=503, body="overloaded")) as srv:
        with pytest.raises(ModelError, match="after 4 attempts"):
            _ask(_client(srv))
        assert srv.count == 4


def test_timeouts_stalled_and_slow_streams_are_retried() -> None:
    def late(req: dict[str, Any], n: int) -> Reply:
        return Reply(content='{"x": 1}', delay_s=1.0 if n == 1 else 0.0)

    with FakeOpenAIServer(late) as srv:
        c = _ask(_client(srv))
        assert c.attempts == 2 and json.loads(c.text) == {"x": 1}

    def stalls(req: dict[str, Any], n: int) -> Reply:
        return Reply(content='{"long": "' + "字" * 80 + '"}', stall_after=2 if n == 1 else None, stall_s=1.5)

    with FakeOpenAIServer(stalls) as srv:
        c = _ask(_client(srv))
        assert c.attempts == 2 and len(json.loads(c.text)["long"]) == 80

    def trickle(req: dict[str, Any], n: int) -> Reply:
        # every event arrives within the read timeout, but the whole stream is too slow
        return Reply(content='{"t": "' + "慢" * 60 + '"}', chunk_delay_s=0.15 if n == 1 else 0.0)

    with FakeOpenAIServer(trickle) as srv:
        c = _ask(_client(srv, total_timeout_s=0.6))
        assert c.attempts == 2


def test_client_errors_are_not_retried() -> None:
    with FakeOpenAIServer(lambda req, n: Reply(status=401, body='{"error":"bad key"}')) as srv:
        with pytest.raises(ConfigError, match="API key"):
            _ask(_client(srv))
        assert srv.count == 1
    with FakeOpenAIServer(lambda req, n: Reply(status=404, body='{"error":"no such model"}')) as srv:
        with pytest.raises(ConfigError, match="not found"):
            _ask(_client(srv))
    with pytest.raises(ConfigError, match="base_url"):
        OpenAICompatClient("", "m")
    with pytest.raises(ConfigError, match="http"):
        OpenAICompatClient("ftp://x/v1", "m")


def test_response_format_steps_down_once_and_warns() -> None:
    def picky(req: dict[str, Any], n: int) -> Reply:
        fmt = (req.get("response_format") or {}).get("type")
        if fmt == "json_schema":
            return Reply(status=400, body='{"error": "response_format json_schema is not supported"}')
        return Reply(content='{"ok": 1}')

    warnings: list[str] = []
    with FakeOpenAIServer(picky) as srv:
        client = _client(srv, on_fallback=warnings.append)
        assert _ask(client).text == '{"ok": 1}'
        assert _ask(client).attempts == 1  # the second call goes straight to json_object
        kinds = [(r.get("response_format") or {}).get("type") for r in srv.requests]
        assert kinds == ["json_schema", "json_object", "json_object"]
        assert len(warnings) == 1 and "json_object" in warnings[0]


def _engine(srv: FakeOpenAIServer, tmp_path: Path | None = None, **kw: Any) -> LLMEngine:
    client = _client(srv, concurrency=kw.pop("concurrency", 3), context_tokens=kw.pop("context_tokens", 6000))
    return LLMEngine(client, draft_path=(tmp_path / "draft.json") if tmp_path else None, **kw)


def test_malformed_replies_are_repaired_or_fail_cleanly() -> None:
    seen: dict[str, int] = {}

    def sloppy(req: dict[str, Any], n: int) -> Reply:
        first = next(m["content"] for m in req["messages"] if m["role"] == "user")
        key = first[:60]
        seen[key] = seen.get(key, 0) + 1
        good = screenwriter(req, n)
        if seen[key] == 1:
            return Reply(content="好的，下面是结果：{这不是 JSON")  # broken: the repair turn must fix it
        if seen[key] == 2:
            return Reply(content="```json\n" + good.content[:-1] + ",}\n```")  # fenced, trailing comma: tolerated
        return good

    with FakeOpenAIServer(sloppy) as srv:
        ctx = RunContext(config=Config())
        result = _engine(srv).generate(literal_text(NOVEL), ScriptInput(source="x", episodes=2), ctx)
        assert result.series.episodes
        repairs = [r for r in srv.requests if task_of(r) == "repair"]
        assert repairs and "invalid JSON" in repairs[0]["messages"][-1]["content"]

    with FakeOpenAIServer(lambda req, n: Reply(content='{"summary": ""}')) as srv:
        with pytest.raises(ModelError, match="no valid summaries reply after 3 attempts"):
            _engine(srv).generate(literal_text(NOVEL), ScriptInput(source="x", episodes=2), RunContext(config=Config()))
        assert srv.count == 3


def test_engine_end_to_end_with_usage_costs_and_traceable_lines(tmp_path: Path) -> None:
    prices = {"input_token": Decimal("0.000002"), "output_token": Decimal("0.000008")}
    asked: list[tuple[str, str, date]] = []

    def lookup(model: str, unit: str, day: date) -> Decimal | None:
        asked.append((model, unit, day))
        return prices.get(unit)

    novel = literal_text(NOVEL)
    with FakeOpenAIServer() as srv, UsageStore(tmp_path / "usage.sqlite") as store:
        ctx = RunContext(config=Config(), usage=store)
        store.start_run("test", run_id=ctx.run_id)
        engine = _engine(srv, tmp_path, price_lookup=lookup, today=lambda: date(2026, 1, 5))
        result = engine.generate(novel, ScriptInput(source="x", episodes=3, episode_seconds=30), ctx)
        series = result.series
        assert [e.number for e in series.episodes] == [1, 2, 3]
        levels = [task_of(r) for r in srv.requests]
        assert levels[0] == "summary" and {"logline", "characters", "outline", "scenes", "shots"} <= set(levels)
        traced = 0
        for ep in series.episodes:
            for shot in ep.shots():
                for line in shot.lines:
                    if line.source is not None:
                        assert line.text in novel.text[line.source.start:line.source.end]
                        traced += 1
        assert traced > 0
        # two records per call, written as the calls happened, priced from the lookup
        rows = list(store.events(ctx.run_id))
        assert len(rows) == 2 * srv.count == len(result.usage)
        out = [r for r in rows if r["unit"] == "output_token"]
        assert all(r["model"] == "fake-model" and r["vendor"] == "" for r in rows)
        for r in out:
            assert Decimal(r["detail"]["cost_cny"]) == (r["quantity"] * prices["output_token"]).quantize(Decimal("0.000001"))
            assert r["tokens_out"] == r["quantity"]
        assert asked and asked[0][2] == date(2026, 1, 5)
        assert (tmp_path / "draft.json").exists()


def test_concurrency_is_capped_and_used() -> None:
    def slow(req: dict[str, Any], n: int) -> Reply:
        reply = screenwriter(req, n)
        reply.delay_s = 0.15 if task_of(req) in ("scenes", "shots") else 0.0
        return reply

    with FakeOpenAIServer(slow) as srv:
        _engine(srv, concurrency=3).generate(literal_text(NOVEL), ScriptInput(source="x", episodes=6, episode_seconds=20),
                                             RunContext(config=Config()))
        assert srv.max_active == 3


def test_draft_resumes_and_regenerates_one_level(tmp_path: Path) -> None:
    novel = literal_text(NOVEL)
    inp = ScriptInput(source="x", episodes=3, episode_seconds=30)
    with FakeOpenAIServer() as srv:
        first = _engine(srv, tmp_path).generate(novel, inp, RunContext(config=Config())).series
        calls = srv.count
        again = _engine(srv, tmp_path).generate(novel, inp, RunContext(config=Config())).series
        assert srv.count == calls  # everything came from the draft
        assert again == first
        # a person edits the logline, and asks for episode 2's lines again
        draft = Draft.load(tmp_path / "draft.json")
        assert draft.logline is not None
        draft.logline.logline = "改过的梗概"
        clear_level(draft, "lines", episode=2)
        draft.save(tmp_path / "draft.json")
        third = _engine(srv, tmp_path).generate(novel, inp, RunContext(config=Config())).series
        new = srv.requests[calls:]
        assert new and {task_of(r) for r in new} == {"shots"}
        assert all("第 2 集" in r["messages"][1]["content"] or "Episode 2" in r["messages"][1]["content"] for r in new)
        assert third.logline == "改过的梗概"


def test_long_novels_are_chunked_to_fit_the_context() -> None:
    long_novel = literal_text(NOVEL * 6)
    with FakeOpenAIServer() as srv:
        engine = _engine(srv, context_tokens=2000)
        engine.generate(long_novel, ScriptInput(source="x", episodes=2, episode_seconds=20), RunContext(config=Config()))
        summaries = [r for r in srv.requests if task_of(r) == "summary"]
        assert len(summaries) >= 3  # the novel did not fit in one prompt
        for r in srv.requests:
            chars = sum(len(m["content"]) for m in r["messages"])
            assert chars < 2000 * 1.6, (task_of(r), chars)  # prompt + running summary stay within the context
        # the running summary is carried from one chunk to the next
        assert "（尚无）" in summaries[0]["messages"][1]["content"]
        assert "（尚无）" not in summaries[1]["messages"][1]["content"]


def test_agent_runs_the_openai_engine_from_config(tmp_path: Path) -> None:
    novel_path = tmp_path / "n.txt"
    novel_path.write_text(NOVEL, encoding="utf-8")
    with FakeOpenAIServer() as srv:
        cfg = Config()
        cfg.llm.base_url, cfg.llm.model, cfg.llm.timeout_s, cfg.llm.concurrency = srv.url, "fake-model", 2.0, 2
        with UsageStore(tmp_path / "u.sqlite") as store:
            ctx = RunContext(config=cfg, usage=store)
            store.start_run("t", run_id=ctx.run_id)
            result = ScriptAgent(price_lookup=lambda m, u, d: None)(
                ScriptInput(source=novel_path, episodes=2, episode_seconds=20, engine="openai"), ctx)
            assert result.engine == "openai" and result.output.engine == "openai:fake-model"
            assert len(list(store.events(ctx.run_id))) == 2 * srv.count
    cfg = Config()
    with pytest.raises(ConfigError, match="no LLM endpoint"):
        ScriptAgent()(ScriptInput(source=novel_path, engine="openai"), RunContext(config=cfg))


def test_price_book_absent_and_vendor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from core.prices import price_lookup

    broken = tmp_path / "prices.toml"
    broken.write_text("[[price]]\nmodel = 'm'\n", encoding="utf-8")  # no unit, no price
    with caplog.at_level(logging.WARNING, logger="core.prices"):
        assert price_lookup(broken) is None
        assert price_lookup(tmp_path / "missing.toml") is None
    assert "without cost" in caplog.text and "missing.toml" in caplog.text
    shipped = price_lookup("")  # the book shipped with ReelForge: deepseek-chat ¥2 per million input tokens
    assert shipped is not None and shipped("deepseek-chat", "input_token", date(2026, 1, 5)) == Decimal("0.000002")
    assert vendor_of("https://api.deepseek.com/v1") == "deepseek"
    assert vendor_of("https://dashscope.aliyuncs.com/compatible-mode/v1") == "aliyun"
    assert vendor_of("http://127.0.0.1:8000/v1") == ""


def test_client_is_thread_safe_under_parallel_use() -> None:
    with FakeOpenAIServer(lambda req, n: Reply(content=json.dumps({"n": n}), delay_s=0.05)) as srv:
        client = _client(srv, concurrency=2)
        results: list[int] = []
        lock = threading.Lock()

        def call() -> None:
            value = json.loads(_ask(client).text)["n"]
            with lock:
                results.append(value)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(1, 7)) and srv.max_active <= 2
