"""The local GGUF engine on real small models: plumbing and speed, not quality.

    python -m benchmarks script_local --model A.gguf [--model B.gguf] [--server A.gguf] [--episodes 2]

For each ``--model``: the whole LLM engine on ``ui/samples/sample_novel.txt`` through
:class:`~agents.script.llm.llamacpp.LlamaCppClient` (llama.cpp in a worker process), with the
model's default budget and ``--fallback offline``. For each ``--server`` model: the same run
through :class:`~agents.script.llm.client.OpenAICompatClient` against llama-cpp-python's own
OpenAI-compatible server (``python -m llama_cpp.server``, needs ``pip install
"llama-cpp-python[server]"``) on 127.0.0.1, so the in-process worker and the HTTP path are
compared on the same model in the same run. The offline engine on the same novel is the baseline.

Reported per run: load seconds, decoding tokens/s measured by the probe, wall seconds per level,
model calls, reply tokens and tokens/s over all calls, and the parts the model could not write
that the offline engine filled. Models of this size cannot write a screenplay alone: the figures
say how fast the plumbing is and how much falls back, nothing about the writing.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.base import RunContext
from agents.script.base import ScriptInput
from agents.script.llm.client import ChatClient, OpenAICompatClient
from agents.script.llm.engine import LEVELS, LLMEngine
from agents.script.llm.gguf import read_gguf_info
from agents.script.llm.llamacpp import LlamaCppClient, licence_of, publisher_of
from agents.script.offline import OfflineEngine
from agents.script.reader import read_novel
from benchmarks.script_offline import machine
from core.config import Config

NOVEL = Path(__file__).parents[1] / "ui" / "samples" / "sample_novel.txt"


def run_engine(client: ChatClient, episodes: int, draft: Path) -> dict[str, Any]:
    novel = read_novel(NOVEL)
    engine = LLMEngine(client, fallback="offline", draft_path=draft)
    t0 = time.perf_counter()
    result = engine.generate(novel, ScriptInput(source=NOVEL, episodes=episodes), RunContext(config=Config()))
    wall = time.perf_counter() - t0
    model_s = sum(float(r.seconds) for r in result.usage if r.unit == "output_token")
    rep = result.report
    filled = rep["filled"]
    by_level = {lv: sum(1 for k in filled if k.split(":")[0] == lv) for lv in LEVELS}
    return {"wall": wall, "seconds": rep["seconds"], "calls": rep["calls"], "tokens_out": rep["tokens_out"],
            "tok_s": rep["tokens_out"] / model_s if model_s else 0.0, "filled": len(filled), "by_level": by_level,
            "estimate": rep.get("estimate_s"), "lines": rep["lines"], "attempts": engine.attempts,
            "tier": engine.budget.tier}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_server(model: Path, ctx: int) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(ctx), "--n_gpu_layers", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode} (pip install 'llama-cpp-python[server]')")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def row(name: str, path: str, load: float, probe: float, r: dict[str, Any]) -> str:
    secs = " ".join(f"{r['seconds'].get(lv, 0):.0f}" for lv in LEVELS)
    fell = ",".join(f"{lv[:4]}{n}" for lv, n in r["by_level"].items() if n) or "-"
    return (f"{name:<32} {path:<7} {load:>6.1f} {probe:>7.0f} {r['wall']:>7.0f}  {secs:<22} {r['calls']:>5} "
            f"{r['tokens_out']:>6} {r['tok_s']:>6.0f} {r['filled']:>6}  {fell}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], type=Path, help="a GGUF file (repeatable)")
    ap.add_argument("--server", action="append", default=[], type=Path,
                    help="a GGUF file to serve with llama_cpp.server and run over HTTP (repeatable)")
    ap.add_argument("--episodes", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.model and not args.server:
        ap.error("give at least one --model or --server GGUF file")
    print(f"machine: {machine()}")
    novel = read_novel(NOVEL)
    print(f"input: {NOVEL.name} ({len(novel.text)} characters), {args.episodes} episodes of 90 s; "
          "fallback offline; baseline: the offline engine on the same input")
    t0 = time.perf_counter()
    OfflineEngine().generate(novel, ScriptInput(source=NOVEL, episodes=args.episodes), RunContext(config=Config()))
    print(f"baseline offline engine: {time.perf_counter() - t0:.2f} s")
    for m in args.model + args.server:
        info = read_gguf_info(m)
        print(f"{m.name}: {info.architecture} {info.size_label}, licence {licence_of(info)}, "
              f"publisher {publisher_of(info) or 'unknown'}, trained context {info.context_length}")
    print()
    print(f"{'model':<32} {'path':<7} {'load s':>6} {'probe':>7} {'wall s':>7}  "
          f"{'s per level (sum lo ch ou sc li)':<22} {'calls':>5} {'tokens':>6} {'tok/s':>6} {'filled':>6}  by level")
    for m in args.model:
        t0 = time.perf_counter()
        client = LlamaCppClient(m, n_gpu_layers=0)
        load = time.perf_counter() - t0
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_engine(client, args.episodes, Path(tmp) / "draft.json")
        finally:
            client.close()
        print(row(m.name, "worker", load, client.tokens_per_s, r))
        print(f"{'':<32} tier {r['tier']}, {r['attempts']} attempts; estimate before the run "
              f"{r['estimate']} s; lines {r['lines']}")
    for m in args.server:
        probe = LlamaCppClient(m, n_gpu_layers=0)  # the same budget and speed as the worker row
        ctx_tokens, params, speed = probe.context_tokens, probe.parameters, probe.tokens_per_s
        probe.close()
        t0 = time.perf_counter()
        with llama_server(m, ctx_tokens) as url:
            load = time.perf_counter() - t0
            http = OpenAICompatClient(url, m.stem, timeout_s=600, concurrency=1, context_tokens=ctx_tokens)
            http.parameters, http.tokens_per_s = params, speed
            with tempfile.TemporaryDirectory() as tmp:
                r = run_engine(http, args.episodes, Path(tmp) / "draft.json")
        print(row(m.name, "http", load, speed, r))
    print()
    print("filled: parts of the screenplay the model could not write, filled by the offline engine and marked.")
    print("Models of this size cannot write a screenplay alone; these figures measure plumbing and speed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
