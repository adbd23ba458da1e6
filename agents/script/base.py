"""Plain data shared by the script engines, and the engine interface.

The registry of engines is :data:`agents.script.ENGINES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.errors import InputError
from core.screenplay import Series
from core.usage import UsageRecord

if TYPE_CHECKING:
    from agents.base import RunContext
    from agents.script.reader import NovelText

MIN_EPISODE_SECONDS = 15.0
MAX_EPISODE_SECONDS = 600.0
MAX_EPISODES = 2000


@dataclass(frozen=True, slots=True)
class ScriptInput:
    """What to adapt and how.

    ``source`` is a file (txt, epub, docx, md) or the literal text of a logline/outline.
    ``episodes=None`` adapts the whole novel (at least one episode per chapter).
    """

    source: Path | str
    episodes: int | None = None
    episode_seconds: float = 90.0
    engine: str = "offline"  # offline | openai | local | a plug-in's name (agents.script.ENGINES)
    title: str | None = None
    hybrid: bool = False  # LLM engines: the offline screenplay, the model decides only doubtful speakers

    def check(self) -> None:
        """Refuse bad values up front, naming the value and the fix."""
        if isinstance(self.source, str) and not self.source.strip():
            raise InputError("source is empty", hint="give a novel file or the text of a logline/outline")
        if self.episodes is not None:
            if isinstance(self.episodes, bool) or not isinstance(self.episodes, int):
                raise InputError(f"episodes must be a whole number, got {self.episodes!r}")
            if not 1 <= self.episodes <= MAX_EPISODES:
                raise InputError(f"episodes must be between 1 and {MAX_EPISODES}, got {self.episodes}",
                                 hint="or leave it out to adapt the whole novel")
        try:
            seconds = float(self.episode_seconds)
        except (TypeError, ValueError) as e:
            raise InputError(f"episode_seconds must be a number, got {self.episode_seconds!r}") from e
        if not MIN_EPISODE_SECONDS <= seconds <= MAX_EPISODE_SECONDS:
            raise InputError(
                f"episode_seconds must be between {MIN_EPISODE_SECONDS:g} and {MAX_EPISODE_SECONDS:g}, got {seconds:g}",
                hint="a micro-drama episode is usually 60-120 s",
            )
        if self.hybrid and self.engine == "offline":
            raise InputError("hybrid mode needs an LLM engine", hint="use --engine openai or --engine local with --hybrid")
        from agents.script import (
            ENGINES,  # the package declares the registry after importing this module
        )

        if self.engine not in ENGINES:
            raise InputError(f"unknown script engine {self.engine!r}", hint=f"use one of {', '.join(ENGINES.names())}")


@dataclass(slots=True)
class EngineResult:
    series: Series
    usage: list[UsageRecord] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


class ScriptEngine(ABC):
    """One way of writing a screenplay from a novel. One required method."""

    name: ClassVar[str]

    @abstractmethod
    def generate(self, novel: NovelText, inp: ScriptInput, ctx: RunContext) -> EngineResult:
        """Write the screenplay; report progress with ``ctx.step`` and fallbacks with ``ctx.warn``."""

