"""Local fakes of the generation providers, written from their official API documentation.

Each fake is an HTTP server on 127.0.0.1 that speaks one provider's documented requests and
answers (paths, JSON shapes, status names, error codes, auth) and counts what it was sent, with
switches for the conditions the adapters must survive: a refused key, 429 with ``Retry-After``,
a failed task, slow tasks, a result URL that has expired. See :mod:`.server`.
"""

from __future__ import annotations

from tests.support.providers.ark import FakeArk
from tests.support.providers.comfyui import FakeComfyUI
from tests.support.providers.dashscope import FakeDashScope
from tests.support.providers.kling import FakeKling
from tests.support.providers.minimax import FakeMiniMax
from tests.support.providers.openai import FakeOpenAI
from tests.support.providers.server import FakeServer
from tests.support.providers.volcengine import FakeVolcengine

FAKES = {"ark": FakeArk, "dashscope": FakeDashScope, "kling": FakeKling, "minimax": FakeMiniMax,
         "openai": FakeOpenAI, "volcengine": FakeVolcengine, "comfyui": FakeComfyUI}

__all__ = ["FAKES", "FakeArk", "FakeComfyUI", "FakeDashScope", "FakeKling", "FakeMiniMax", "FakeOpenAI", "FakeServer",
           "FakeVolcengine"]
