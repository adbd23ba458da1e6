"""A stand-in for llama-cpp-python, for tests of the worker process and its crash handling.

Put ``tests/support/fake_llama_cpp`` first on ``PYTHONPATH`` and choose what it does with
``REELFORGE_FAKE_LLAMA``: ``ok`` (valid screenwriter replies), ``echo`` (replies that copy the
prompt's field descriptions), ``segv-load`` / ``segv-chat`` (a real SIGSEGV in native code, at
load or at the first chat), ``amx-chat`` (llama.cpp's AMX log line, then SIGSEGV), ``error-chat``
(a Python exception). The crashes are real: ``ctypes.string_at(0)`` reads address 0.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

__version__ = "0.0-fake"

ECHO = {
    "summary": {"summary": "把此前梗概与本段合并后的新累计梗概", "characters": ["本段出现的重要人物名"], "events": []},
    "logline": {"title": "剧名", "logline": "一句话梗概", "genre": "类型"},
    "characters": {"characters": [{"name": "正式姓名", "aliases": [], "role": "lead"}]},
    "outline": {"episodes": [{"number": 1, "title": "集名", "synopsis": "本集剧情"}]},
    "scenes": {"scenes": [{"place": "地点", "summary": "本场内容", "source_quote": "原文中本场开头的一句话"}]},
    "shots": {"shots": [{"visual_prompt": "画面描述（地点+人物+动作）", "lines": [{"speaker": "说话人", "text": "台词"}]}]},
}


def _mode() -> str:
    return os.environ.get("REELFORGE_FAKE_LLAMA", "ok")


def _segfault() -> None:
    sys.stderr.flush()
    ctypes.string_at(0)  # a real invalid read: the process dies with SIGSEGV


def llama_print_system_info() -> bytes:
    return b"CPU : SSE3 = 1 | AVX2 = 1 | FAKE = 1 |"


def llama_supports_gpu_offload() -> bool:
    return False


def llama_set_n_threads(ctx: object, n_threads: int, n_threads_batch: int) -> None:
    return None


class _Params:
    n_threads = 1
    n_threads_batch = 1


class Llama:
    def __init__(self, model_path: str, n_ctx: int = 512, **kwargs: Any) -> None:
        print("llama_model_loader: loaded meta data (fake)", file=sys.stderr)
        if _mode() == "segv-load":
            _segfault()
        self._n_ctx = n_ctx
        self.chat_format = kwargs.get("chat_format") or "chatml"
        self.calls = 0
        self._ctx = type("Ctx", (), {"ctx": None})()
        self.context_params = _Params()

    def n_ctx(self) -> int:
        return self._n_ctx

    def create_chat_completion(self, messages: list[dict[str, str]], max_tokens: int = 16, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        mode = _mode()
        prompt = next((m["content"] for m in messages if m["role"] == "user"), "")
        probe = "[task:" not in prompt
        if mode == "segv-chat" and not probe:
            _segfault()
        if mode == "amx-chat" and not probe:
            print("ggml_backend_amx_mul_mat: ldtilecfg", file=sys.stderr)
            _segfault()
        if mode == "error-chat" and not probe:
            raise ValueError("Requested tokens (9000) exceed context window of 512")
        if probe:
            content = "Hello there, friend."
        elif mode == "echo":
            task = prompt.split("]", 1)[0].removeprefix("[task:")
            content = json.dumps(ECHO.get(task, {}), ensure_ascii=False)
        else:
            from tests.support.fake_llm_server import screenwriter

            content = screenwriter({"messages": messages}, self.calls).content
        words = len(content) // 2 + 1
        return {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": sum(len(m["content"]) for m in messages), "completion_tokens": min(words, max_tokens)}}
