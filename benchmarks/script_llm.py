"""LLM path: N concurrent requests vs sequential against a local OpenAI-compatible server.

    python -m benchmarks.script_llm [--requests 16] [--latency 0.2] [--concurrency 1,2,4,8]

The loopback server (:mod:`tests.support.fake_llm_server`) answers each request after a fixed
latency, like a remote model whose time is spent generating, so the client's own overhead and its
concurrency cap are what is measured. The baseline is concurrency 1 (sequential) in the same run.
Target: near-linear speed-up up to the concurrency limit. A second table runs the whole LLM
engine (summaries -> lines) on a small novel at concurrency 1 and 4.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from agents.base import RunContext
from agents.script.base import ScriptInput
from agents.script.llm.client import OpenAICompatClient
from agents.script.llm.engine import LLMEngine
from agents.script.reader import literal_text
from benchmarks.script_offline import machine
from core.config import Config
from tests.support.fake_llm_server import FakeOpenAIServer, Reply, screenwriter, task_of

NOVEL = "".join(
    f"第{n}章\n" + "".join(f"    张三来到城隍庙，见李四坐在窗边。\n    “你来晚了！”李四冷冷地说。\n"
                          f"    张三笑道：“路上有事，耽搁了{k}个时辰。”\n    张三猛地拔刀，冲出了城隍庙！\n" for k in range(12))
    for n in range(1, 9)
)


def run_requests(url: str, n: int, concurrency: int, stream: bool) -> float:
    client = OpenAICompatClient(url, "bench", timeout_s=10, concurrency=concurrency, stream=stream)
    messages = [{"role": "user", "content": "[task:ping] 你好"}]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:  # callers may use more threads than the cap allows
        list(pool.map(lambda _i: client.complete(messages, schema={"type": "object"}), range(n)))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    ap.add_argument("--concurrency", default="1,2,4,8")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]
    print(f"machine: {machine()}")
    print(f"inputs: {args.requests} requests, server latency {args.latency:g} s, loopback HTTP; baseline = concurrency 1")
    header = f"{'mode':<8} {'conc':>4} {'wall s':>7} {'req/s':>6} {'speed-up':>8} {'ideal':>6} {'efficiency':>10} {'server max active':>17}"
    print(header)
    print("-" * len(header))
    for stream in (False, True):
        base = None
        for c in levels:
            with FakeOpenAIServer(lambda req, n: Reply(content='{"ok": true}', delay_s=args.latency)) as srv:
                wall = run_requests(srv.url, args.requests, c, stream)
                peak = srv.max_active
            base = base or wall
            ideal = min(c, args.requests)
            print(f"{'stream' if stream else 'plain':<8} {c:>4} {wall:>7.2f} {args.requests / wall:>6.1f} "
                  f"{base / wall:>8.2f} {ideal:>6} {base / wall / ideal:>10.0%} {peak:>17}")
    print()
    print("whole LLM engine on a small novel (8 chapters, 4 episodes), scene/line levels in parallel:")
    header = f"{'conc':>4} {'wall s':>7} {'calls':>6} {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    base = None
    for c in (1, 4):
        def slow(req: dict, n: int) -> Reply:  # type: ignore[type-arg]
            reply = screenwriter(req, n)
            reply.delay_s = args.latency if task_of(req) in ("scenes", "shots") else args.latency / 4
            return reply

        with FakeOpenAIServer(slow) as srv:
            client = OpenAICompatClient(srv.url, "bench", timeout_s=10, concurrency=c, context_tokens=6000)
            t0 = time.perf_counter()
            LLMEngine(client).generate(literal_text(NOVEL), ScriptInput(source="x", episodes=4, episode_seconds=60),
                                       RunContext(config=Config()))
            wall = time.perf_counter() - t0
            calls = srv.count
        base = base or wall
        print(f"{c:>4} {wall:>7.2f} {calls:>6} {base / wall:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
