"""Prompt templates, and the check that a reply does not copy them back.

The templates ship as package data (``agents/script/prompts/{zh,en}.toml``). Small models often
answer a prompt with its own field descriptions ("正式姓名", "地点", "台词", "画面描述（…）") or
sentences of its instructions; such a reply is valid JSON and would pass as a screenplay.
:class:`EchoGuard` learns the template text of every prompt — the example values of its JSON,
their heads, and the instruction sentences — and names every reply value that repeats them, so
the error can go back to the model on the repair turn.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from pydantic import BaseModel

from core.errors import InputError

PROMPT_KEYS = ("system", "summary", "logline", "characters", "outline", "scenes", "shots", "repair")
# fields whose values a validator maps onto a fixed set anyway: their examples are choices, not echoes
CHOICE_FIELDS = {"int_ext", "time_of_day", "size", "camera", "kind", "role", "voice", "genre", "paywall", "number"}
# values the engine itself puts into prompts when there is nothing yet
EMPTY_MARKERS = ("（尚无）", "(none yet)", "（无）", "(none)")

_PAIR = re.compile(r'"(\w+)"\s*:\s*\[?\s*"([^"]*)"')
_QUOTED = re.compile(r'"[^"\n]*"')
_VAR = re.compile(r"\$\{?\w+\}?")
_SPLIT = re.compile(r"[\n，。；：、,.;:!?！？（）()\[\]{}<>《》“”\"'`/|]+")
_HEAD_END = re.compile(r"[（(，,：:]|\s+e\.g\.|\s+如\s")
_CJK = re.compile(r"[\u4e00-\u9fff]")


class Prompts:
    """Prompt templates shipped as package data (``agents/script/prompts/{zh,en}.toml``)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    @classmethod
    def load(cls, language: str = "zh", path: str | Path | None = None) -> Prompts:
        if path is not None:
            raw = Path(path).read_text(encoding="utf-8")
        else:
            if language not in ("zh", "en"):
                raise InputError(f"no prompts for language {language!r}", hint="use zh or en")
            raw = resources.files("agents.script").joinpath("prompts", f"{language}.toml").read_text(encoding="utf-8")
        table = tomllib.loads(raw)
        missing = set(PROMPT_KEYS) - set(table)
        if missing:
            raise InputError(f"prompt file lacks {', '.join(sorted(missing))}")
        return cls({k: str(v) for k, v in table.items()})

    def render(self, key: str, **values: object) -> str:
        return Template(self.table[key]).substitute({k: str(v) for k, v in values.items()})


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s).lower()


def _long_enough(s: str) -> bool:
    """A phrase distinctive enough that finding it inside a reply means it was copied."""
    cjk = len(_CJK.findall(s))
    return cjk >= 8 or (cjk == 0 and len(s.strip()) >= 24)


@dataclass(slots=True)
class _Placeholder:
    field: str
    text: str  # the example value with its $variables removed
    head: str  # what it starts with, before a bracket or a comma ("画面描述" of "画面描述（…）")
    chunks: list[str]  # its long literal pieces


@dataclass(slots=True)
class EchoGuard:
    """Finds reply values that repeat a prompt's template text instead of content."""

    placeholders: list[_Placeholder] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    markers: tuple[str, ...] = EMPTY_MARKERS

    @classmethod
    def from_prompts(cls, prompts: Prompts) -> EchoGuard:
        guard = cls()
        seen: set[str] = set()
        for key in PROMPT_KEYS:
            template = prompts.table.get(key, "")
            for name, example in _PAIR.findall(template):
                if name in CHOICE_FIELDS or not example.strip():
                    continue
                text = " ".join(_VAR.sub("", example).split())
                head = _HEAD_END.split(text, maxsplit=1)[0].strip()
                chunks = [c.strip() for c in _SPLIT.split(text) if _long_enough(c)]
                if _norm(text) not in seen:
                    seen.add(_norm(text))
                    guard.placeholders.append(_Placeholder(name, text, head if len(head) >= 2 else "", chunks))
            prose = _VAR.sub("|", _QUOTED.sub("|", template))
            for piece in _SPLIT.split(prose):
                piece = piece.strip()
                if _long_enough(piece) and not piece.startswith("task") and piece not in guard.phrases:
                    guard.phrases.append(piece)
        return guard

    def echoes(self, value: str) -> str:
        """What ``value`` copies from the prompts ("" when nothing)."""
        v = _norm(value)
        if not v:
            return ""
        if "[task:" in value or "<<<" in value or ">>>" in value:
            return "the prompt's markup"
        if v in {_norm(m) for m in self.markers}:
            return f"the prompt's empty marker {value.strip()!r}"
        for p in self.placeholders:
            if v == _norm(p.text):
                return f"the description of {p.field!r}"
            if p.head:
                h = _norm(p.head)
                if v == h or (v.startswith(h) and v[len(h):len(h) + 1] in ("（", "(")):
                    return f"the description of {p.field!r} ({p.head!r})"
            for chunk in p.chunks:
                if _norm(chunk) in v:
                    return f"the description of {p.field!r} ({chunk!r})"
        for phrase in self.phrases:
            if _norm(phrase) in v:
                return f"the prompt's instructions ({phrase!r})"
        return ""

    def problems(self, reply: BaseModel) -> list[str]:
        """Every string in ``reply`` that echoes the prompts, as ``path = 'value' (what it copies)``."""
        found: list[str] = []
        for path, text in _strings(reply.model_dump(), ""):
            if path.rsplit(".", 1)[-1].split("[")[0] in CHOICE_FIELDS:
                continue
            what = self.echoes(text)
            if what:
                found.append(f"{path} = {text[:40]!r} repeats {what}")
        return found

    def check(self, reply: BaseModel) -> None:
        """Raise ``ValueError`` (fed back to the model) when the reply copies the prompt."""
        found = self.problems(reply)
        if found:
            shown = "; ".join(found[:6]) + (f"; and {len(found) - 6} more" if len(found) > 6 else "")
            raise ValueError(f"{len(found)} value(s) copy the prompt's template instead of content from the novel: "
                             f"{shown}. Write real values taken from the source text, not the field descriptions")


def _strings(obj: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(obj, str):
        return [(path, obj)]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _strings(v, f"{path}.{k}" if path else str(k))]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in _strings(v, f"{path}[{i}]")]
    return []
