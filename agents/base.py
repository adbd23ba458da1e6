"""The agent interface: typed input -> typed result + usage records.

An agent is a small class with a ``name``, a ``description`` and one required method,
``run(inp, ctx)``. Its input is plain data with a ``check()`` method that refuses bad values
(naming the field, the value and the fix); calling the agent runs ``inp.check()`` before
``run``, so every input is checked up front in one place and no work starts on a bad one. Everything an agent needs from the outside world (workspace, config,
usage store, progress and cancellation) comes in the :class:`RunContext`; everything it
produces goes out in an :class:`AgentResult`. Fallbacks are never silent: ``ctx.warn``
logs a WARNING and puts the message in the run's report.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

from core.config import Config
from core.errors import Cancelled  # re-exported: agents raise it from ctx.step
from core.usage import UsageRecord, UsageStore, seconds_since
from core.workspace import Workspace

log = logging.getLogger(__name__)


class AgentInput(Protocol):
    """What every agent input provides."""

    def check(self) -> None:
        """Refuse bad values before any work: raise an :class:`~core.errors.InputError` (a
        :class:`~core.errors.FieldError` where one field is at fault) naming the field, the value
        and the fix."""


I = TypeVar("I", bound=AgentInput)  # noqa: E741 - the conventional name for an input type
O = TypeVar("O")  # noqa: E741

ProgressFn = Callable[[float, str], None]


@dataclass(slots=True)
class RunContext:
    config: Config
    workspace: Workspace | None = None
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8])
    usage: UsageStore | None = None
    progress: ProgressFn | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)  # warnings and fallbacks for the report

    def warn(self, message: str) -> None:
        """A fallback or degradation the user must hear about: logged and reported."""
        log.warning(message)
        if message not in self.notes:
            self.notes.append(message)

    def step(self, fraction: float, message: str) -> None:
        if self.cancel.is_set():
            raise Cancelled("stopped by the user", hint="run the same command again to resume")
        if self.progress is not None:
            self.progress(max(0.0, min(1.0, fraction)), message)

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("stopped by the user", hint="run the same command again to resume")

    def record(self, records: list[UsageRecord]) -> None:
        if self.usage is not None and records:
            self.usage.add(self.run_id, records)


@dataclass(slots=True)
class AgentResult(Generic[O]):
    output: O
    engine: str
    files: list[Path] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: Decimal = Decimal(0)
    skipped: bool = False  # True when the stage was up to date and reused


class Agent(ABC, Generic[I, O]):
    """Base of every agent. Subclasses set ``name`` and ``description`` and implement ``run``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def run(self, inp: I, ctx: RunContext) -> AgentResult[O]:
        """Do the work; write usage through ``ctx.record`` and return what was made."""

    def __call__(self, inp: I, ctx: RunContext) -> AgentResult[O]:
        """Check the input, then run. This is the way to call an agent."""
        check = getattr(inp, "check", None)
        if not callable(check):
            raise TypeError(f"{type(inp).__name__} has no check(): every input of agent {self.name!r} needs one")
        check()
        start = time.perf_counter()
        result = self.run(inp, ctx)
        result.seconds = seconds_since(start, time.perf_counter())
        return result
