"""Get a valid JSON object out of a chat model: extract, validate, and ask again with the error."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from agents.script.llm.client import ChatClient, Completion, Message
from core.errors import ModelError
from core.screenplay import format_validation_error

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


class InvalidReplyError(ModelError):
    """The model answered, but no reply validated in the attempts allowed (a level to fill or fix)."""


def extract_json(text: str) -> object:
    """The first JSON object in ``text``: code fences, prose around it and trailing commas are tolerated."""
    if not text or not text.strip():
        raise ValueError("the reply is empty")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    last_error = "no '{' in the reply"
    for cand in candidates:
        for fixed in (cand, _TRAILING_COMMA.sub(r"\1", cand)):
            pos = fixed.find("{")
            tries = 0
            while pos >= 0 and tries < 20:
                try:
                    obj, _end = decoder.raw_decode(fixed, pos)
                    if isinstance(obj, dict):
                        return obj
                except json.JSONDecodeError as e:
                    last_error = f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"
                pos = fixed.find("{", pos + 1)
                tries += 1
    raise ValueError(last_error)


def ask_json(
    client: ChatClient,
    messages: list[Message],
    model: type[M],
    *,
    repair_prompt: Callable[[str], str],
    on_completion: Callable[[Completion, int], None],
    attempts: int = 3,
    max_tokens: int = 2048,
    what: str = "reply",
    check: Callable[[M], None] | None = None,
) -> M:
    """Ask until the reply validates as ``model`` (and passes ``check``), at most ``attempts`` times.

    Each failed reply goes back to the model with the validation errors (the repair turn).
    Raises :class:`InvalidReplyError` naming the last problem when no reply validates.
    """
    schema = model.model_json_schema()
    convo = list(messages)
    problem = ""
    for attempt in range(1, attempts + 1):
        completion = client.complete(convo, schema=schema, schema_name=model.__name__, max_tokens=max_tokens)
        on_completion(completion, attempt)
        try:
            data = extract_json(completion.text)
            value = model.model_validate(data)
            if check is not None:
                check(value)
            if attempt > 1:
                log.info("%s valid after %d attempts", what, attempt)
            return value
        except ValidationError as e:
            problem = format_validation_error(e)
        except ValueError as e:
            problem = str(e)
        if completion.finish_reason == "length":
            problem += "\n(the reply was cut off at the token limit: answer more briefly)"
        log.warning("%s from %s is not valid (attempt %d/%d): %s", what, client.model, attempt, attempts,
                    problem.replace("\n", " ")[:300])
        convo = list(messages) + [
            {"role": "assistant", "content": completion.text[:6000]},
            {"role": "user", "content": repair_prompt(problem)},
        ]
    raise InvalidReplyError(
        f"{client.model} gave no valid {what} after {attempts} attempts; last problem: {problem[:400]}",
        hint="try a stronger model, use --fallback offline to fill the level from the offline engine, "
             "or edit the draft by hand and re-run",
    )
