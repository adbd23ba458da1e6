"""The child process that runs llama.cpp: ``python -m agents.script.llm.llamacpp_worker``.

llama.cpp is native code: a build that uses CPU instructions the machine cannot run ends the
process with SIGSEGV or SIGILL, with no Python exception to catch. So it runs here, in a child of
:class:`~agents.script.llm.llamacpp.LlamaCppClient`, which turns such a death into an error that
names the cause and the fix. The protocol is one JSON object per line: the first request loads
the model, every later one is a chat completion. Native output to standard output is sent to
/dev/null (only the protocol travels there); native logging goes to standard error, which the
parent keeps for its error messages and never shows otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import IO, Any


def _channel() -> IO[str]:
    """The protocol stream: a private copy of stdout, with fd 1 itself sent to /dev/null."""
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    sys.stdout = sys.stderr  # a stray print() must not corrupt the protocol
    return proto


def _send(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def _load(req: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import llama_cpp

    try:  # route llama.cpp's log through Python's logging, at a level that drops it
        import logging

        import llama_cpp._logger as native_log

        native_log.logger.setLevel(logging.CRITICAL)
    except ImportError:
        pass
    t0 = time.perf_counter()
    c0 = time.process_time()
    kwargs: dict[str, Any] = {"model_path": req["path"], "n_ctx": int(req["n_ctx"]), "n_gpu_layers": int(req["n_gpu_layers"]),
                              "n_threads": int(req["n_threads"]), "n_threads_batch": int(req["n_threads"]),
                              "seed": int(req.get("seed", 0)), "verbose": False}
    if req.get("chat_format"):
        kwargs["chat_format"] = req["chat_format"]
    llm = llama_cpp.Llama(**kwargs)
    info = {"ok": True, "op": "ready", "n_ctx": llm.n_ctx(), "load_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "version": getattr(llama_cpp, "__version__", ""),
            "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "chat_format": getattr(llm, "chat_format", "") or ""}
    return llm, info


def _chat(llm: Any, req: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    c0 = time.process_time()
    fmt = req.get("response_format")
    out = llm.create_chat_completion(messages=req["messages"], max_tokens=int(req["max_tokens"]),
                                     temperature=float(req.get("temperature", 0.3)), response_format=fmt,
                                     seed=int(req.get("seed", 0)))
    choice = out["choices"][0]
    usage = out.get("usage") or {}
    return {"ok": True, "op": "chat", "text": choice["message"].get("content") or "",
            "tokens_in": int(usage.get("prompt_tokens") or 0), "tokens_out": int(usage.get("completion_tokens") or 0),
            "finish_reason": choice.get("finish_reason") or "", "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}


def _threads(llm: Any, n: int) -> dict[str, Any]:
    """Use ``n`` threads from now on (generation and prompt reading)."""
    import llama_cpp

    llama_cpp.llama_set_n_threads(llm._ctx.ctx, n, n)
    llm.context_params.n_threads = llm.context_params.n_threads_batch = n
    return {"ok": True, "op": "threads", "n": n}


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends this process
    out = _channel()
    llm: Any = None
    for raw in sys.stdin:
        if not raw.strip():
            continue
        req = json.loads(raw)
        op = req.get("op")
        try:
            if op == "load":
                llm, info = _load(req)
                _send(out, info)
            elif op == "chat" and llm is not None:
                _send(out, _chat(llm, req))
            elif op == "threads" and llm is not None:
                _send(out, _threads(llm, int(req["n"])))
            elif op == "quit":
                break
            else:
                _send(out, {"ok": False, "error": f"unexpected request {op!r}", "kind": "ProtocolError"})
        except Exception as e:  # noqa: BLE001 - every Python error goes back to the parent as data
            _send(out, {"ok": False, "error": str(e) or type(e).__name__, "kind": type(e).__name__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
