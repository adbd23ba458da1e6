"""Executors run a plan of tasks: here, in plan order (:class:`LocalExecutor`, the default), or
across a cluster (``agents.executors.ray.RayExecutor``, the optional extra ``ray``).

A :class:`Plan` is plain data. Each :class:`Task` names its *kind* (a function in a task-kind
registry, looked up where the task runs), its small arguments, the tasks it needs first
(``after``), the project files it reads and writes (``inputs`` / ``outputs``, relative to the
project folder, which every worker reaches at the same path) and the :class:`Resources` it
needs: CPUs, GPUs, or a :class:`Pool` of long-lived workers (a model loaded once; a provider
whose calls are limited across the whole cluster). What every task shares (the config, the
screenplay) travels once, in ``Plan.shared``.

A task kind is a function ``fn(ctx: TaskContext) -> TaskOutput`` and must be idempotent: what it
makes is kept under content-hash keys in the project, so running it again (a retry after a
worker died, a second run after the driver died) finds its results and redoes nothing finished;
every file it writes is written atomically (temporary name, then rename). Only the driver writes
the manifest and the usage store: a task hands its usage records and notes back in its
:class:`TaskOutput`, and the executor passes each :class:`TaskResult` to ``on_result`` as it
arrives.

Errors: a task that raises fails the run. No new task starts, the ones running finish (their
results are kept) and :class:`TaskFailed` is raised. A worker or a node that dies is the
executor's business: the Ray executor runs the task again elsewhere.

This module imports nothing of ours but ``core``, and never imports Ray.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from core.errors import Cancelled, InputError, ReelForgeError
from core.usage import UsageRecord

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
TaskStatus = Literal["done", "reused", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class Resources:
    """What one task needs where it runs."""

    cpus: float = 1.0
    gpus: float = 0.0
    pool: str = ""  # run on this pool's long-lived workers instead of a fresh one


@dataclass(frozen=True, slots=True)
class Pool:
    """Long-lived workers that keep what they load (a model) between tasks.

    ``concurrency`` tasks run at once on each worker: a provider's pool of one worker with
    ``concurrency=4`` admits four calls at a time across the whole cluster. ``per_gpu`` starts
    one worker per GPU of the cluster (each holding one GPU); on a cluster without GPUs it
    starts ``size`` CPU workers instead, with a warning.
    """

    name: str
    size: int = 1
    cpus: float = 1.0
    gpus: float = 0.0
    concurrency: int = 1
    per_gpu: bool = False

    def check(self) -> None:
        if not self.name:
            raise InputError("a pool needs a name")
        if self.size < 1 or self.concurrency < 1:
            raise InputError(f"pool {self.name!r}: size and concurrency must be at least 1, "
                             f"got {self.size} and {self.concurrency}")
        if self.cpus < 0 or self.gpus < 0:
            raise InputError(f"pool {self.name!r}: cpus and gpus must not be negative")


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work: what it is, what it needs first, what it reads, writes and holds."""

    id: str  # unique in the plan, e.g. "ep03/shot/S02-01"
    kind: str  # a name in the plan's task-kind registry
    args: Mapping[str, Any] = field(default_factory=dict)  # small plain data
    after: tuple[str, ...] = ()  # ids of tasks that must finish first (added to the plan before this one)
    inputs: tuple[str, ...] = ()  # project files (relative) that must exist when it starts
    outputs: tuple[str, ...] = ()  # project files (relative) it must have written when it ends
    resources: Resources = field(default_factory=Resources)
    weight: float = 1.0  # its share of the progress bar
    group: str = ""  # what it belongs to, e.g. "ep03"
    label: str = ""  # what a person reads in the progress bar


@dataclass(slots=True)
class TaskOutput:
    """What a task kind returns: small plain data for the driver."""

    value: Any = None
    usage: list[UsageRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings and fallbacks for the run's report
    reused: bool = False  # everything it would make was there already


@dataclass(frozen=True, slots=True)
class TaskError:
    """Why a task failed, as plain data (it crosses process boundaries)."""

    type: str  # the exception's class name
    message: str
    hint: str = ""
    expected: bool = True  # a ReelForgeError (bad input, missing model), not a bug


@dataclass(slots=True)
class TaskResult:
    task: str
    kind: str
    status: TaskStatus
    output: TaskOutput | None = None
    error: TaskError | None = None
    seconds: float = 0.0
    worker: str = ""  # host:pid where it ran
    node: str = ""  # the cluster node (Ray's node id), "" when local
    exception: BaseException | None = field(default=None, repr=False)  # in-process executors only

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class TaskFailed(ReelForgeError):
    """A task of the plan failed; ``result`` says which and why. Finished work is kept."""

    def __init__(self, result: TaskResult) -> None:
        err = result.error or TaskError("Error", "unknown failure")
        super().__init__(f"task {result.task} failed: {err.message}",
                         hint=err.hint or "see the run's log in the project's logs/ folder; run the same "
                                          "command again to resume")
        self.result = result


# -- the plan ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Plan:
    """Tasks in an order that respects ``after`` (a task's prerequisites are added before it)."""

    root: str  # the project folder: the same path on every node
    kinds: str  # "module:attribute" of the task-kind Registry, imported where tasks run
    shared: dict[str, Any] = field(default_factory=dict)  # what every task reads (sent once)
    tasks: list[Task] = field(default_factory=list)
    pools: dict[str, Pool] = field(default_factory=dict)
    log_dir: str = ""  # where workers write their logs ("" : no file)
    run_id: str = ""
    _ids: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, task: Task) -> Task:
        if task.id in self._ids:
            raise ValueError(f"task {task.id!r} is already in the plan")
        for dep in task.after:
            if dep not in self._ids:
                raise ValueError(f"task {task.id!r} needs {dep!r}, which is not in the plan before it")
        if task.resources.pool and task.resources.pool not in self.pools:
            raise ValueError(f"task {task.id!r} runs on pool {task.resources.pool!r}, which the plan does not declare")
        for rel in (*task.inputs, *task.outputs):
            p = PurePosixPath(rel)
            if p.is_absolute() or ".." in p.parts or not rel:
                raise ValueError(f"task {task.id!r}: {rel!r} must be a path inside the project")
        self._ids[task.id] = len(self.tasks)
        self.tasks.append(task)
        return task

    def add_pool(self, pool: Pool) -> Pool:
        pool.check()
        self.pools.setdefault(pool.name, pool)
        return self.pools[pool.name]

    def task(self, task_id: str) -> Task:
        return self.tasks[self._ids[task_id]]

    def index(self, task_id: str) -> int:
        return self._ids[task_id]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids

    def __len__(self) -> int:
        return len(self.tasks)

    def validate(self) -> Plan:
        """No two tasks write the same file (a duplicate would race for it)."""
        writers: dict[str, str] = {}
        for t in self.tasks:
            for rel in t.outputs:
                if rel in writers:
                    raise ValueError(f"tasks {writers[rel]!r} and {t.id!r} both write {rel!r}")
                writers[rel] = t.id
        return self

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t.id: [] for t in self.tasks}
        for t in self.tasks:
            for dep in t.after:
                out[dep].append(t.id)
        return out

    def used_pools(self) -> list[Pool]:
        names = {t.resources.pool for t in self.tasks if t.resources.pool}
        return [p for n, p in self.pools.items() if n in names]


# -- running one task (in whatever process the executor chose) --------------------------------
@dataclass(slots=True)
class TaskContext:
    """What a task kind gets where it runs."""

    task: Task
    root: Path
    shared: Mapping[str, Any]
    cache: dict[str, Any]  # kept by the worker between tasks (its pool's models, engines)
    cancel: threading.Event
    report: ProgressFn  # this task's own progress, 0..1
    worker: str = ""

    @property
    def args(self) -> Mapping[str, Any]:
        return self.task.args

    def path(self, rel: str) -> Path:
        return self.root / rel


_KINDS: dict[str, Any] = {}


def task_kinds(path: str) -> Any:
    """The task-kind registry named ``module:attribute`` (imported once per process)."""
    if path not in _KINDS:
        module, _, attr = path.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        _KINDS[path] = obj
    return _KINDS[path]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(task: Task, plan_root: str, kinds: str, shared: Mapping[str, Any], cache: dict[str, Any], *,
            cancel: threading.Event | None = None, report: ProgressFn | None = None, node: str = "",
            keep_exception: bool = False) -> TaskResult:
    """Run one task here and describe the outcome. Errors become a failed result; an interrupt
    (``KeyboardInterrupt``, ``SystemExit``) propagates."""
    start = time.perf_counter()
    root = Path(plan_root)
    where = worker_name()
    ctx = TaskContext(task, root, shared, cache, cancel or threading.Event(), report or (lambda f, m: None), where)
    log.debug("task %s (%s) starts on %s", task.id, task.kind, where)
    try:
        missing = [rel for rel in task.inputs if not (root / rel).exists()]
        if missing:
            raise InputError(f"task {task.id}: {missing[0]!r} is not in the project folder {str(root)!r} on {where}",
                             hint="every node must reach the project folder at the same path (shared storage); "
                                  "see the README's cluster section")
        fn = task_kinds(kinds).factory(task.kind)
        out = fn(ctx)
        if not isinstance(out, TaskOutput):
            raise TypeError(f"task kind {task.kind!r} returned {type(out).__name__}, not a TaskOutput")
        unwritten = [rel for rel in task.outputs if not (root / rel).exists()]
        if unwritten:
            raise ReelForgeError(f"task {task.id} finished without writing {unwritten[0]!r}")
    except ReelForgeError as e:
        seconds = time.perf_counter() - start
        (log.info if isinstance(e, Cancelled) else log.error)("task %s failed after %.2fs: %s", task.id, seconds, e)
        return TaskResult(task.id, task.kind, "failed", error=TaskError(type(e).__name__, e.message, e.hint or ""),
                          seconds=seconds, worker=where, node=node, exception=e if keep_exception else None)
    except Exception as e:  # noqa: BLE001 - a bug in a task: reported with its traceback in the worker's log
        seconds = time.perf_counter() - start
        log.error("task %s failed after %.2fs:\n%s", task.id, seconds, traceback.format_exc())
        return TaskResult(task.id, task.kind, "failed", error=TaskError(type(e).__name__, repr(e), expected=False),
                          seconds=seconds, worker=where, node=node, exception=e if keep_exception else None)
    seconds = time.perf_counter() - start
    log.debug("task %s %s in %.2fs", task.id, "reused" if out.reused else "done", seconds)
    return TaskResult(task.id, task.kind, "reused" if out.reused else "done", output=out, seconds=seconds,
                      worker=where, node=node)


# -- progress ----------------------------------------------------------------------------------
class ProgressBoard:
    """One progress figure for the whole plan, fed by every task (wherever it runs)."""

    def __init__(self, plan: Plan, progress: ProgressFn | None, *, interval: float = 0.1) -> None:
        self.progress = progress
        self.interval = interval
        self._weights = {t.id: max(0.0, t.weight) for t in plan.tasks}
        self._labels = {t.id: t.label or t.id for t in plan.tasks}
        self._total = sum(self._weights.values()) or 1.0
        self._part: dict[str, float] = {}
        self._finished = 0
        self._lock = threading.Lock()
        self._last = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, sum(self._weights[t] * f for t, f in self._part.items()) / self._total)

    def update(self, task_id: str, fraction: float, message: str = "") -> None:
        with self._lock:
            if task_id not in self._weights or self._part.get(task_id) == 1.0:
                return
            self._part[task_id] = max(self._part.get(task_id, 0.0), min(0.99, max(0.0, fraction)))
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
            self._emit(task_id, message)

    def finish(self, task_id: str, status: str) -> None:
        with self._lock:
            if task_id not in self._weights or self._part.get(task_id) == 1.0:
                return
            self._part[task_id] = 1.0
            self._finished += 1
            self._last = time.monotonic()
            self._emit(task_id, "复用 · reused" if status in ("reused", "skipped") else "完成 · done")

    def _emit(self, task_id: str, message: str) -> None:
        if self.progress is None:
            return
        text = f"{self._finished}/{len(self._weights)} {self._labels[task_id]}"
        self.progress(self.fraction, f"{text} · {message}" if message else text)


# -- executors -----------------------------------------------------------------------------------
OnStart = Callable[[Task], bool]  # False: skip the task (the driver found it up to date)
OnResult = Callable[[TaskResult], None]


class Executor(Protocol):
    """Runs a plan. ``on_start`` is asked before each task starts (on the driver); ``on_result``
    gets every finished task's result, on the driver, as it arrives."""

    name: str
    remote: bool  # tasks may run on other machines (what is sent must hold no secret)

    def run(self, plan: Plan, *, on_start: OnStart | None = None, on_result: OnResult | None = None,
            progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> dict[str, TaskResult]:
        """Run every task; raise :class:`TaskFailed` (after the running tasks end) when one fails."""
        ...

    def close(self) -> None:
        """Let go of what the executor started (a local cluster, its workers)."""
        ...


class LocalExecutor:
    """Every task in plan order, in this process: today's behaviour, and the default.

    Each pool's tasks share one cache for the run, so a model is loaded once, as on a pool's
    worker in a cluster.
    """

    name = "local"
    remote = False

    def run(self, plan: Plan, *, on_start: OnStart | None = None, on_result: OnResult | None = None,
            progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> dict[str, TaskResult]:
        plan.validate()
        cancel = cancel or threading.Event()
        board = ProgressBoard(plan, progress)
        caches: dict[str, dict[str, Any]] = {}
        results: dict[str, TaskResult] = {}
        for task in plan.tasks:
            if cancel.is_set():
                raise Cancelled("stopped by the user", hint="run the same command again to resume")
            if on_start is not None and not on_start(task):
                res = TaskResult(task.id, task.kind, "skipped", output=TaskOutput(reused=True))
            else:
                def report(fraction: float, message: str, _id: str = task.id) -> None:
                    board.update(_id, fraction, message)

                res = execute(task, plan.root, plan.kinds, plan.shared, caches.setdefault(task.resources.pool, {}),
                              cancel=cancel, report=report, keep_exception=True)
            results[task.id] = res
            if not res.ok:
                raise TaskFailed(res) from res.exception
            board.finish(task.id, res.status)
            if on_result is not None:
                on_result(res)
        return results

    def close(self) -> None:
        return None
