"""A loopback OpenAI-compatible server that answers the hybrid mode's speaker questions.

Its "model" picks the first candidate offered for each line, which is the rules' own guess
(:func:`agents.script.hybrid._candidates` lists it first). It checks the plumbing (batching,
JSON parsing, usage records, which lines are sent), not attribution skill. ``pick`` can be given
to answer otherwise (e.g. the last candidate, or a name that was not offered). Other tasks go to
the fake screenwriter of the LLM engine tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agents.script.llm.fake_server import FakeOpenAIServer, Reply, first_user, screenwriter

_ITEM = re.compile(r"^(\d+)\. 候选人：(.*)$", re.M)


def speaker_responder(pick: Callable[[list[str]], str] = lambda names: names[0]) -> Callable[[dict[str, Any], int], Reply]:
    def respond(request: dict[str, Any], n: int) -> Reply:
        prompt = first_user(request)
        if "[task:speakers]" not in prompt:
            return screenwriter(request, n)
        lines = [{"id": int(i), "speaker": pick(names.split("、"))} for i, names in _ITEM.findall(prompt)]
        return Reply(content=json.dumps({"lines": lines}, ensure_ascii=False))

    return respond


class FakeSpeakerServer(FakeOpenAIServer):
    def __init__(self, pick: Callable[[list[str]], str] | None = None) -> None:
        super().__init__(speaker_responder(pick) if pick else speaker_responder(), model="fake-speakers")
