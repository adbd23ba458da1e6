"""Run a plan across a Ray cluster (the optional extra ``ray``): ``RayExecutor(address="auto")``.

* Tasks without a pool are Ray tasks with the CPUs and GPUs they declare, submitted as their
  prerequisites finish, earliest episode first, a bounded number at a time so that an episode
  whose shots are done is cut at once instead of waiting behind the whole series.
* A :class:`~core.executor.Pool` is a set of Ray actors that keep what they load between tasks
  (a diffusers pipeline, a super-resolution model): one per GPU of the cluster for a GPU pool,
  each call holding its GPU. A pool's size times its concurrency is also a limit across the
  whole cluster (a provider's pool of one actor with ``concurrency=4`` admits four calls at once).
* A worker or a node that dies: Ray runs the task again elsewhere (``retries`` times; a pool's
  actor is restarted and its call retried). Tasks are idempotent (content-hashed results, whole
  files only), so a task run twice makes nothing twice. An error raised by a task is not retried:
  the run stops starting tasks, lets the running ones finish, and raises.
* Progress: each task reports to one small actor, which the driver reads into one bar.
* Storage: before the first task, one probe per node reads a token the driver wrote in the
  project, so a node that does not see the project folder at the same path is named at once.
  Each worker logs to ``PROJECT/logs/run-RUN-worker-HOST-PID.log``.

Secrets do not travel: the Studio sends the config without them, and each worker takes its own
from its node's environment or config file.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from core.errors import Cancelled, MissingDependencyError, ReelForgeError
from core.executor import (
    OnResult,
    OnStart,
    Plan,
    ProgressBoard,
    ProgressFn,
    Task,
    TaskError,
    TaskFailed,
    TaskOutput,
    TaskResult,
    execute,
)

log = logging.getLogger(__name__)

NAMESPACE = "reelforge"


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError("ray", "ray") from e
    return ray


# -- what runs on the workers (module level: Ray sends these by reference) ----------------------
_WORKER: dict[str, Any] = {"run": None, "cache": {}, "log": None}


def _worker_cache(run_id: str) -> dict[str, Any]:
    """This worker process's cache for the run (a worker is reused between tasks of a run)."""
    if _WORKER["run"] != run_id:
        _WORKER["run"], _WORKER["cache"] = run_id, {}
    cache: dict[str, Any] = _WORKER["cache"]
    return cache


def _worker_log(log_dir: str, run_id: str) -> None:
    """This worker's log file in the project's ``logs/`` (one per run and process)."""
    if not log_dir or _WORKER["log"] == (log_dir, run_id):
        return
    root = logging.getLogger()
    old = _WORKER.get("handler")
    if old is not None:
        root.removeHandler(old)
        old.close()
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(log_dir) / f"run-{run_id}-worker-{socket.gethostname()}-{os.getpid()}.log",
                                  encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    _WORKER["log"], _WORKER["handler"] = (log_dir, run_id), handler


def _node_id() -> str:
    return str(_ray().get_runtime_context().get_node_id())


class _Reporter:
    """A task's progress, sent to the progress actor at most twice a second."""

    def __init__(self, sink: Any, task_id: str) -> None:
        self.sink, self.task_id, self.last = sink, task_id, 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self.sink.report.remote(self.task_id, fraction, message)


def _run(task: Task, root: str, kinds: str, shared: Any, log_dir: str, run_id: str, sink: Any,
         cache: dict[str, Any], cancel: threading.Event | None = None) -> TaskResult:
    _worker_log(log_dir, run_id)
    node = _node_id()
    log.info("task %s (%s) starts on node %s", task.id, task.kind, node[:12])
    res = execute(task, root, kinds, shared, cache, cancel=cancel, report=_Reporter(sink, task.id), node=node)
    log.info("task %s %s in %.2fs", task.id, res.status, res.seconds)
    return res


def run_task(task: Task, root: str, kinds: str, shared: Any, log_dir: str, run_id: str, sink: Any) -> TaskResult:
    """A task without a pool, as a Ray task."""
    return _run(task, root, kinds, shared, log_dir, run_id, sink, _worker_cache(run_id))


class PoolWorker:
    """A pool's worker (a Ray actor): keeps its cache, so a model it loads serves every task it gets."""

    def __init__(self, pool: str, log_dir: str, run_id: str) -> None:
        self.pool, self.log_dir, self.run_id = pool, log_dir, run_id
        self.cache: dict[str, Any] = {}
        self.cancel = threading.Event()

    def run(self, task: Task, root: str, kinds: str, shared: Any, sink: Any) -> TaskResult:
        return _run(task, root, kinds, shared, self.log_dir, self.run_id, sink, self.cache, self.cancel)

    def stop(self) -> None:
        self.cancel.set()


class ProgressSink:
    """Where every task reports its progress; the driver takes the latest of each."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[float, str]] = {}

    def report(self, task_id: str, fraction: float, message: str) -> None:
        self.latest[task_id] = (fraction, message)

    def take(self) -> dict[str, tuple[float, str]]:
        out, self.latest = self.latest, {}
        return out


def probe(path: str, token: str) -> tuple[str, str, bool]:
    """On one node: is the token the driver wrote there? (node id, host, seen)."""
    try:
        seen = Path(path).read_text(encoding="utf-8") == token
    except OSError:
        seen = False
    return _node_id(), socket.gethostname(), seen


# -- the driver ----------------------------------------------------------------------------------
class RayExecutor:
    """Runs a plan on a Ray cluster.

    ``address``: ``"auto"`` joins the cluster this machine belongs to (``RAY_ADDRESS``, or one
    started with ``ray start``), else starts a local one in Ray's temp folder (``RAY_TMPDIR``
    honoured); ``"local"`` always starts a local one; otherwise a Ray address. When Ray is
    already initialised in this process, that connection is used as it is. ``num_cpus`` and
    ``num_gpus`` apply to a local cluster this executor starts. ``retries``: runs of a task after
    its worker or node died. ``inflight``: tasks without a pool submitted at once (default: twice
    the cluster's CPUs).
    """

    name = "ray"
    remote = True

    def __init__(self, address: str | None = "auto", *, retries: int = 3, num_cpus: int | None = None,
                 num_gpus: int | None = None, inflight: int | None = None, probe_timeout: float = 120.0) -> None:
        if retries < 0:
            raise ReelForgeError(f"retries must be 0 or more, got {retries}")
        self.address = address or "auto"
        self.retries = retries
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.inflight = inflight
        self.probe_timeout = probe_timeout
        self._connected = False  # this executor called ray.init (and will call ray.shutdown)
        self.started_cluster = False  # ... and that started a local cluster

    def __enter__(self) -> RayExecutor:
        self.connect()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------
    def connect(self) -> None:
        ray = _ray()
        if ray.is_initialized():
            return
        opts: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
        local = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "include_dashboard": False}
        try:
            if self.address == "local":
                ray.init(address="local", **local, **opts)
                self.started_cluster = True
            elif self.address == "auto":
                try:
                    ray.init(address="auto", **opts)
                except ConnectionError:
                    log.info("no Ray cluster runs here: starting a local one")
                    ray.init(address="local", **local, **opts)
                    self.started_cluster = True
            else:
                ray.init(address=self.address, **opts)
        except ConnectionError as e:
            raise ReelForgeError(f"cannot reach the Ray cluster at {self.address!r}: {e}",
                                 hint="start it with `ray start --head` (see the README's cluster section), "
                                      "or use --ray auto") from e
        self._connected = True
        res = ray.cluster_resources()
        log.info("Ray cluster: %d node(s), %g CPU, %g GPU", len([n for n in ray.nodes() if n.get("Alive")]),
                 res.get("CPU", 0), res.get("GPU", 0))

    def close(self) -> None:
        if self._connected:
            _ray().shutdown()
            self._connected = False

    # -- running ---------------------------------------------------------------------------
    def run(self, plan: Plan, *, on_start: OnStart | None = None, on_result: OnResult | None = None,
            progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> dict[str, TaskResult]:
        ray = _ray()
        plan.validate()
        cancel = cancel or threading.Event()
        self.connect()
        self.check_storage(plan)
        run = _Run(self, ray, plan, on_start, on_result, ProgressBoard(plan, progress), cancel)
        try:
            return run.loop()
        finally:
            run.stop()

    def check_storage(self, plan: Plan) -> None:
        """Every node must see the plan's folder at the same path: a token written here is read there."""
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        folder = Path(plan.log_dir or plan.root)
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        path = folder / f".node-check-{token[:12]}"
        path.write_text(token, encoding="utf-8")
        try:
            remote = ray.remote(probe)
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            refs = {remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(str(path), token): n for n in nodes}
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=self.probe_timeout)
            for ref in ready:
                node = refs[ref]
                host = node.get("NodeManagerHostname", node["NodeID"][:12])
                try:
                    _, _, seen = ray.get(ref)
                except ray.exceptions.RayError as e:
                    raise ReelForgeError(f"node {host} cannot run ReelForge's tasks: {str(e).splitlines()[0]}",
                                         hint="install the same reelforge version (pip install 'reelforge[ray]') "
                                              "in the same Python environment on every node") from e
                if not seen:
                    raise ReelForgeError(f"node {host} does not see {str(folder)!r}",
                                         hint="put the project on storage every node mounts at the same path "
                                              "(NFS, CephFS...); see the README's cluster section")
            if len(ready) < len(refs):
                log.warning("%d node(s) did not answer the storage check in %gs; their tasks will report a missing "
                            "project folder if they cannot see it", len(refs) - len(ready), self.probe_timeout)
        finally:
            path.unlink(missing_ok=True)


class _Run:
    """One plan on the cluster: the driver's loop."""

    def __init__(self, ex: RayExecutor, ray: Any, plan: Plan, on_start: OnStart | None, on_result: OnResult | None,
                 board: ProgressBoard, cancel: threading.Event) -> None:
        self.ex, self.ray, self.plan = ex, ray, plan
        self.on_start, self.on_result, self.board, self.cancel = on_start, on_result, board, cancel
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # the progress actor lives on the driver's node: a worker node that dies does not take it along
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self.sink = ray.remote(ProgressSink).options(num_cpus=0, scheduling_strategy=here, max_restarts=-1).remote()
        self.shared = ray.put(plan.shared)
        self.task_fn = ray.remote(run_task)
        self.pools: dict[str, list[Any]] = {}
        self.busy: dict[str, list[int]] = {}
        self.inflight: dict[Any, tuple[str, str, int]] = {}  # ref -> (task, pool, worker)
        self.results: dict[str, TaskResult] = {}
        self.failed: TaskResult | None = None
        self.left = {t.id: len(t.after) for t in plan.tasks}
        self.children = plan.dependents()
        self.ready: list[tuple[int, str]] = [(plan.index(t.id), t.id) for t in plan.tasks if not t.after]
        heapq.heapify(self.ready)
        self._cap_checked = 0.0
        self.cap = 4
        self._start_pools()

    def _start_pools(self) -> None:
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        actor = self.ray.remote(PoolWorker)
        for pool in self.plan.used_pools():
            size, want = pool.size, pool.gpus
            if pool.per_gpu:
                if gpus:
                    size, want = gpus, max(pool.gpus, 1.0)
                else:
                    want = 0.0
                    log.info("pool %s: no GPU in the cluster, %d CPU worker(s)", pool.name, size)
            elif want > gpus:
                raise ReelForgeError(f"pool {pool.name!r} needs {want:g} GPU per worker; the cluster has {gpus}",
                                     hint="add a GPU node, or run this stage on the CPU ([device] = \"cpu\")")
            self.pools[pool.name] = [
                actor.options(num_cpus=pool.cpus, num_gpus=want, max_concurrency=pool.concurrency,
                              max_restarts=self.ex.retries, max_task_retries=self.ex.retries)
                .remote(pool.name, self.plan.log_dir, self.plan.run_id)
                for _ in range(size)]
            self.busy[pool.name] = [0] * size
            log.info("pool %s: %d worker(s), %g GPU and %g CPU each, %d task(s) at once each", pool.name, size, want,
                     pool.cpus, pool.concurrency)

    def _plain_cap(self) -> int:
        now = time.monotonic()
        if now - self._cap_checked > 5:  # nodes join and leave
            self._cap_checked = now
            cpus = self.ray.cluster_resources().get("CPU", 1)
            self.cap = self.ex.inflight or max(4, int(2 * cpus))
        return self.cap

    # -- the loop --------------------------------------------------------------------------
    def loop(self) -> dict[str, TaskResult]:
        last_poll = 0.0
        while self.ready or self.inflight:
            if self.cancel.is_set():
                raise Cancelled("stopped by the user", hint="run the same command again to resume")
            if self.failed is None:
                self._submit()
            if not self.inflight:
                if self.failed is not None or not self.ready:
                    break
                continue
            done, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=0.25)
            if done:
                done, _ = self.ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
            for ref in done:
                self._finished(ref)
            now = time.monotonic()
            if now - last_poll >= 0.5:
                last_poll = now
                self._poll_progress()
        if self.failed is not None:
            raise TaskFailed(self.failed)
        return self.results

    def _poll_progress(self) -> None:
        try:
            latest = self.ray.get(self.sink.take.remote(), timeout=10)
        except self.ray.exceptions.RayError as e:  # progress only: the tasks go on, the bar waits
            log.warning("progress from the workers is unavailable for now: %s", str(e).splitlines()[0] if str(e) else e)
            return
        for tid, (fraction, message) in latest.items():
            self.board.update(tid, fraction, message)

    def _submit(self) -> None:
        blocked: list[tuple[int, str]] = []
        plain = sum(1 for _, pool, _ in self.inflight.values() if not pool)
        while self.ready:
            item = heapq.heappop(self.ready)
            task = self.plan.task(item[1])
            pool = task.resources.pool
            worker = -1
            if pool:
                busy, conc = self.busy[pool], self.plan.pools[pool].concurrency
                worker = min(range(len(busy)), key=busy.__getitem__)
                if busy[worker] >= conc:
                    blocked.append(item)
                    continue
            elif plain >= self._plain_cap():
                blocked.append(item)
                continue
            if self.on_start is not None and not self.on_start(task):
                self._record(TaskResult(task.id, task.kind, "skipped", output=TaskOutput(reused=True)))
                continue
            if pool:
                ref = self.pools[pool][worker].run.remote(task, self.plan.root, self.plan.kinds, self.shared, self.sink)
                self.busy[pool][worker] += 1
            else:
                r = task.resources
                ref = self.task_fn.options(num_cpus=r.cpus, num_gpus=r.gpus, max_retries=self.ex.retries,
                                           retry_exceptions=False, name=task.id[:100]).remote(
                    task, self.plan.root, self.plan.kinds, self.shared, self.plan.log_dir, self.plan.run_id, self.sink)
                plain += 1
            self.inflight[ref] = (task.id, pool, worker)
        for item in blocked:
            heapq.heappush(self.ready, item)

    def _finished(self, ref: Any) -> None:
        tid, pool, worker = self.inflight.pop(ref)
        if pool:
            self.busy[pool][worker] -= 1
        task = self.plan.task(tid)
        try:
            res: TaskResult = self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:
            res = TaskResult(tid, task.kind, "failed", error=TaskError("Cancelled", "stopped by the user"))
        except self.ray.exceptions.RayError as e:  # the worker or node died more than `retries` times, or a bug
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.error("task %s was lost: %s", tid, e)
            res = TaskResult(tid, task.kind, "failed", error=TaskError(
                type(e).__name__, first, hint=f"it was run {self.ex.retries + 1} time(s); see the workers' logs in "
                                                f"{self.plan.log_dir or 'the Ray logs'}", expected=False))
        if not res.ok:
            self.results[tid] = res
            self.board.finish(tid, "failed")
            if self.failed is None:
                self.failed = res
                if self.inflight:
                    log.info("a task failed: waiting for the %d running task(s) to finish", len(self.inflight))
            return
        self._record(res)

    def _record(self, res: TaskResult) -> None:
        self.results[res.task] = res
        self.board.finish(res.task, res.status)
        if self.on_result is not None:
            self.on_result(res)
        for child in self.children[res.task]:
            self.left[child] -= 1
            if self.left[child] == 0:
                heapq.heappush(self.ready, (self.plan.index(child), child))

    def stop(self) -> None:
        """Stop what is still running (an interrupt, a cancel) and let go of the pools."""
        for ref, (_, pool, _) in list(self.inflight.items()):
            if not pool:
                try:
                    self.ray.cancel(ref, force=False)
                except Exception as e:  # noqa: BLE001 - best effort while stopping
                    log.debug("cancel %s: %s", ref, e)
        for workers in self.pools.values():
            for w in workers:
                try:
                    w.stop.remote()
                    self.ray.kill(w, no_restart=True)
                except Exception as e:  # noqa: BLE001 - best effort while stopping
                    log.debug("stop pool worker: %s", e)
        try:
            self.ray.kill(self.sink, no_restart=True)
        except Exception as e:  # noqa: BLE001
            log.debug("stop progress actor: %s", e)
