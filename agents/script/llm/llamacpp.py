"""GGUF models through llama-cpp-python, in a child process so a native crash cannot take ReelForge down.

:class:`LlamaCppClient` reads the model's own metadata first (pure Python, :mod:`.gguf`), then
starts :mod:`.llamacpp_worker`, loads the model there and measures its speed with a short
generation (the per-model probe). A worker that dies — SIGSEGV from CPU kernels this machine
cannot run, SIGILL from instructions it lacks — becomes a :class:`RuntimeCrash` naming the cause
and the fix (rebuild with ``GGML_NATIVE=OFF``); the run's draft is kept, so it resumes.

:func:`probe_runtime` runs the same worker on a tiny generated model (or a given one): what
``reelforge doctor`` reports as "does the local runtime work here".
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.script.llm.client import ChatClient, Completion, Message
from agents.script.llm.gguf import GGUFInfo, read_gguf_info, write_probe_model
from core.errors import MissingDependencyError, ModelError

log = logging.getLogger(__name__)

WORKER = "agents.script.llm.llamacpp_worker"
MAX_CONTEXT = 8192  # tokens: more costs memory and time and no small model uses it well
LOAD_TIMEOUT_S = 600.0
REBUILD = ('CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install --force-reinstall --no-cache-dir --no-binary '
           'llama-cpp-python llama-cpp-python=={version}')
# publishers of model families whose GGUF files often name none (general.basename -> publisher)
FAMILIES = {"gemma": "Google", "llama": "Meta", "qwen": "Alibaba Qwen", "smollm": "HuggingFaceTB",
            "phi": "Microsoft", "mistral": "Mistral AI", "deepseek": "DeepSeek", "glm": "Zhipu AI",
            "chatglm": "Zhipu AI", "internlm": "Shanghai AI Laboratory", "yi": "01.AI", "baichuan": "Baichuan"}
# chat formats for architectures whose GGUF files may lack a chat template
CHAT_FORMATS = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "qwen2": "chatml", "qwen3": "chatml"}


class RuntimeCrash(ModelError):
    """The llama.cpp worker died from a signal or exited unexpectedly."""

    def __init__(self, message: str, *, hint: str, signal_name: str, stderr_tail: str) -> None:
        super().__init__(message, hint=hint)
        self.signal_name = signal_name
        self.stderr_tail = stderr_tail


def runtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("llama-cpp-python")
    except Exception:  # noqa: BLE001 - not installed, or installed without metadata
        return "0.3.36"


def rebuild_hint() -> str:
    return (f"rebuild llama.cpp for this CPU: {REBUILD.format(version=runtime_version())} "
            "(./scripts/bootstrap.sh installs it this way); `reelforge doctor` then checks the runtime")


def crash_error(returncode: int, stderr_tail: str, when: str, model: str) -> RuntimeCrash:
    """The error for a worker that ended with ``returncode`` while ``when`` (loading / generating)."""
    low = stderr_tail.lower()
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
    else:
        name = f"exit code {returncode}"
    if "amx" in low or "ldtilecfg" in low:
        cause = ("this llama.cpp build chose AMX matrix kernels that the CPU advertises but this machine "
                 "cannot run")
    elif name == "SIGILL":
        cause = ("this llama.cpp build uses CPU instructions this machine does not have (it was compiled for "
                 "another CPU, e.g. with GGML_NATIVE on a machine that reports more than it runs)")
    elif name == "SIGKILL":
        cause = "the system killed it, most often for lack of memory: use a smaller model or a shorter context"
    elif name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGABRT"):
        cause = ("llama.cpp crashed in native code; the usual cause is a build whose CPU kernels do not match "
                 "this machine (a damaged model file is the other)")
    else:
        cause = "the llama.cpp worker process ended unexpectedly"
    last = " | ".join(ln for ln in stderr_tail.strip().splitlines()[-3:] if ln.strip())
    message = f"the local GGUF runtime crashed ({name}) while {when} {model}: {cause}"
    if last:
        message += f"; its last output: {last[:300]}"
    return RuntimeCrash(message, hint=rebuild_hint() + "; if the probe works but this model crashes, fetch the model again",
                        signal_name=name, stderr_tail=stderr_tail)


class _Worker:
    """One child process speaking the worker's JSON-lines protocol."""

    def __init__(self, model: str, python: str | None = None) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[3])  # the folder holding the agents package
        env["PYTHONPATH"] = os.pathsep.join(x for x in (root, env.get("PYTHONPATH", "")) if x)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.model = model
        self.proc = subprocess.Popen([python or sys.executable, "-m", WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     errors="replace", env=env)
        self.stderr: deque[str] = deque(maxlen=80)
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._pump_out, daemon=True, name="llamacpp-out").start()
        threading.Thread(target=self._pump_err, daemon=True, name="llamacpp-err").start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # llama.cpp's own logging: kept for errors, shown only at DEBUG
            self.stderr.append(line.rstrip("\n"))
            log.debug("llama.cpp: %s", line.rstrip())

    def request(self, obj: dict[str, Any], timeout_s: float, when: str) -> dict[str, Any]:
        with self._lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(obj, ensure_ascii=False) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # it died already: the reply queue says so
            try:
                line = self._replies.get(timeout=timeout_s)
            except queue.Empty:
                self.kill()
                raise ModelError(f"the local GGUF runtime gave no answer in {timeout_s:.0f} s while {when} {self.model}",
                                 hint="the model may be too slow for this machine: use a smaller one, or fewer episodes") from None
            if line is None:
                try:
                    rc = self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill()
                    rc = -9
                time.sleep(0.05)  # let the stderr pump take the last lines
                raise crash_error(rc, "\n".join(self.stderr), when, self.model)
            try:
                reply: dict[str, Any] = json.loads(line)
            except ValueError as e:
                raise ModelError(f"the local GGUF runtime sent an unreadable reply: {line[:120]!r}") from e
            return reply

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


def _require_runtime() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        err = MissingDependencyError("llama-cpp-python", "llm-local")
        err.hint = ('pip install "reelforge[llm-local]" with CMAKE_ARGS="-DGGML_NATIVE=OFF" set '
                    "(it compiles llama.cpp, a few minutes; ./scripts/bootstrap.sh does this)")
        raise err


def publisher_of(info: GGUFInfo) -> str:
    """The model's publisher from its metadata, else from its family's name."""
    if info.publisher:
        return info.publisher
    base = str(info.keys.get("general.basename") or info.name or info.path.stem).lower()
    for family in sorted(FAMILIES, key=len, reverse=True):
        if base.startswith(family):
            return FAMILIES[family]
    return ""


def licence_of(info: GGUFInfo) -> str:
    """``general.license`` of the GGUF, else the model card or licence file beside it, else ``unknown: ...``."""
    from models.modelcard import is_placeholder_licence, model_card_licence

    if info.licence and not is_placeholder_licence(info.licence):
        return info.licence
    return model_card_licence(info.path)


class LlamaCppClient(ChatClient):
    """A GGUF model run by llama.cpp in a worker process (``pip install reelforge[llm-local]``)."""

    engine = "local"

    def __init__(self, path: str | Path, *, context_tokens: int | None = None, n_gpu_layers: int = -1,
                 threads: int | None = None, timeout_s: float | None = None, seed: int = 0,
                 python: str | None = None) -> None:
        p = Path(path).expanduser()
        self.info = read_gguf_info(p)  # a wrong file fails here, before any native code runs
        _require_runtime()
        self.path = p
        self.model = p.stem
        self.vendor = publisher_of(self.info)
        self.licence = licence_of(self.info)
        self.parameters = self.info.parameters
        self.concurrency = 1
        self.seed = seed
        trained = self.info.context_length or 4096
        self.context_tokens = int(context_tokens or min(trained, MAX_CONTEXT))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.threads = threads or max(1, cores)
        self._auto_threads = threads is None and cores > 1
        self.timeout_s = timeout_s
        chat_format = None if self.info.chat_template else CHAT_FORMATS.get(self.info.architecture)
        self._worker = _Worker(self.model, python)
        ready = self._worker.request({"op": "load", "path": str(p), "n_ctx": self.context_tokens,
                                      "n_gpu_layers": n_gpu_layers, "n_threads": self.threads, "seed": seed,
                                      "chat_format": chat_format}, LOAD_TIMEOUT_S, "loading")
        if not ready.get("ok"):
            self._worker.close()
            raise ModelError(f"llama.cpp could not load {p}: {ready.get('error')}",
                             hint="check that the file is a complete GGUF model for an architecture this "
                                  f"llama-cpp-python {runtime_version()} supports")
        self.runtime: dict[str, Any] = ready
        self.context_tokens = int(ready.get("n_ctx") or self.context_tokens)
        system = str(ready.get("system_info", ""))
        offload = bool(ready.get("gpu_offload")) and n_gpu_layers != 0
        self.device = "cpu" if not offload else "mps" if "METAL" in system.upper() else "cuda"
        self.tokens_per_s = 0.0
        self._speed()
        log.info("GGUF %s (%s, %s parameters, licence %s, publisher %s): context %d, %d threads, %.0f tokens/s",
                 self.model, self.info.architecture, self.info.size_label or self.parameters, self.licence,
                 self.vendor or "unknown", self.context_tokens, self.threads, self.tokens_per_s)

    def _speed(self) -> None:
        """The per-model probe: short generations that measure decoding speed and pick the thread count.

        On a shared machine whose cores are busy, llama.cpp's threads wait for each other at every
        step: one thread was ~20x faster than two on a loaded 2-core VM. So with no thread count
        given, one thread and all cores are both measured and the faster is kept.
        """
        self.complete([{"role": "user", "content": "Hi."}], max_tokens=2, temperature=0.0)  # warm-up
        speeds = {self.threads: self._measure()}
        if self._auto_threads:
            self._set_threads(1)
            speeds[1] = self._measure()
            best = max(speeds, key=lambda n: speeds[n])
            if best != 1:
                self._set_threads(best)
            self.threads = best
        self.tokens_per_s = speeds[self.threads]

    def _measure(self) -> float:
        c = self.complete([{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0.0)
        return c.tokens_out / c.seconds if c.seconds > 0 and c.tokens_out else 0.0

    def _set_threads(self, n: int) -> None:
        reply = self._worker.request({"op": "threads", "n": n}, 60.0, "configuring")
        if not reply.get("ok"):
            raise ModelError(f"llama.cpp could not use {n} thread(s): {reply.get('error')}")

    def complete(self, messages: list[Message], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "output", max_tokens: int = 2048, temperature: float = 0.3) -> Completion:
        start = time.perf_counter()
        fmt = {"type": "json_object", "schema": schema} if schema is not None else None
        speed = self.tokens_per_s or 5.0
        timeout = self.timeout_s or max(120.0, 60.0 + 3 * max_tokens / speed)
        reply = self._worker.request({"op": "chat", "messages": messages, "max_tokens": max_tokens,
                                      "temperature": temperature, "response_format": fmt, "seed": self.seed},
                                     timeout, "generating with")
        if not reply.get("ok"):
            raise ModelError(f"llama.cpp failed on a request to {self.model}: {reply.get('error')}",
                             hint="a prompt longer than the context fails this way: use fewer episodes per run "
                                  "or a model with a longer context")
        return Completion(text=str(reply["text"]), model=self.model, tokens_in=int(reply["tokens_in"]),
                          tokens_out=int(reply["tokens_out"]), seconds=time.perf_counter() - start,
                          finish_reason=str(reply.get("finish_reason") or ""), cpu_seconds=float(reply["cpu_s"]))

    def close(self) -> None:
        self._worker.close()

    def __del__(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.kill()


@dataclass(slots=True)
class ProbeResult:
    """Whether the GGUF runtime loads and runs a model here, in a child process."""

    ok: bool
    status: str  # "works", "not installed", "crashed", "failed"
    detail: str
    model: str = ""
    tokens_per_s: float = 0.0
    version: str = ""
    system_info: str = ""
    hint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def probe_runtime(model: str | Path | None = None, *, python: str | None = None) -> ProbeResult:
    """Load ``model`` (default: a tiny generated GGUF) in a worker and generate a few tokens."""
    if importlib.util.find_spec("llama_cpp") is None:
        return ProbeResult(False, "not installed", "llama-cpp-python is not installed",
                           hint='CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "reelforge[llm-local]" (or ./scripts/bootstrap.sh)')
    with tempfile.TemporaryDirectory(prefix="reelforge-probe-") as tmp:
        path = Path(model) if model else write_probe_model(Path(tmp) / "probe.gguf")
        name = path.name if model else "the built-in probe model"
        client: LlamaCppClient | None = None
        try:
            client = LlamaCppClient(path, context_tokens=256 if not model else None, n_gpu_layers=0, python=python)
            return ProbeResult(True, "works", f"loaded {name} and generated at {client.tokens_per_s:.0f} tokens/s",
                               model=str(path) if model else "", tokens_per_s=client.tokens_per_s,
                               version=str(client.runtime.get("version", "")),
                               system_info=str(client.runtime.get("system_info", "")))
        except RuntimeCrash as e:
            return ProbeResult(False, "crashed", e.message, model=str(model or ""), hint=e.hint or "",
                               extra={"signal": e.signal_name})
        except (ModelError, OSError) as e:
            return ProbeResult(False, "failed", getattr(e, "message", str(e)), model=str(model or ""),
                               hint=getattr(e, "hint", "") or "")
        finally:
            if client is not None:
                client.close()


def runtime_report(model_path: str = "") -> dict[str, Any]:
    """For ``reelforge doctor``: does the GGUF runtime work here (a probe in a child process), and
    what the configured GGUF model says about itself (read, not loaded)."""
    probe = probe_runtime()
    report: dict[str, Any] = {"status": probe.status, "works": probe.ok, "detail": probe.detail, "hint": probe.hint,
                              "version": probe.version, "tokens_per_s": round(probe.tokens_per_s, 1)}
    path = Path(model_path).expanduser() if model_path else None
    if path is not None and path.suffix.lower() == ".gguf":
        try:
            info = read_gguf_info(path)
            report["model"] = {"path": str(path), "architecture": info.architecture, "size": info.size_label,
                               "parameters": info.parameters, "context": info.context_length,
                               "licence": licence_of(info), "publisher": publisher_of(info)}
        except ModelError as e:
            report["model"] = {"path": str(path), "error": e.message}
    return report


def runtime_lines(report: dict[str, Any]) -> list[str]:
    """:func:`runtime_report` as lines of the doctor's text report."""
    rows = [f"  local GGUF runtime / 本地模型运行时: {report['status']} — {report['detail']}"
            + (f" (fix: {report['hint']})" if report["hint"] and not report["works"] else "")]
    m = report.get("model")
    if m:
        rows.append(f"  local model {m['path']}: " + (m["error"] if "error" in m else
                    f"{m['architecture']} {m['size'] or m['parameters']}, context {m['context']}, "
                    f"licence {m['licence'] or 'unknown'}, publisher {m['publisher'] or 'unknown'}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m agents.script.llm.llamacpp --probe [MODEL.gguf]``: exit 0 when the runtime works here."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m agents.script.llm.llamacpp", description=main.__doc__)
    ap.add_argument("--probe", action="store_true", help="load and run a model in a child process")
    ap.add_argument("model", nargs="?", default=None, help="a GGUF file (default: a tiny generated one)")
    args = ap.parse_args(argv)
    result = probe_runtime(args.model)
    print(f"local GGUF runtime: {result.status} — {result.detail}" + (f"\nfix: {result.hint}" if result.hint else ""),
          file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
