"""Run generation jobs against providers: never pay twice, never lose a result, meter every call.

A :class:`Job` is one named piece of work (``ep01/sc01-sh02/keyframe``) for one provider. Jobs
are grouped in chains (a keyframe, then the image-to-video of that keyframe); chains run
concurrently, the steps of a chain in order, and each provider admits at most
``[providers.NAME] concurrency`` tasks at once. So an episode takes about as long as its
slowest chain, not the sum of its shots.

For every job, in this order:

1. the journal is read: a finished job whose files are in the project is reused (nothing is
   sent); a task the provider is still running is polled again; a create call that was cut off
   is looked up by its idempotency key where the API has one;
2. before the first paid call of a run: the whole plan is quoted and checked against the
   budget, and each provider's key is checked with a free call;
3. before each create call: its quoted cost is reserved from the budget, and the intent is
   committed to the journal; the task id is committed the moment it is known, before polling;
4. polling starts within ``poll_first_s`` (2 s) and backs off (x1.5, jitter) to ``poll_max_s``,
   never waiting longer than ``poll_fraction`` (7%) of the time the task has taken so far;
5. when the provider reports success, its usage report becomes usage records (provider,
   model, units as reported, the unit price used, the task id) and the results are downloaded
   at once (URLs expire: a fresh one is asked for once), content-hashed into the project;
6. a task the provider failed is sent again with a new seed, up to ``retries`` times; after
   that the job fails with the provider's reason and the caller falls back (the animatic).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.errors import ReelForgeError
from core.usage import UsageRecord
from pipelines.providers.base import (
    ACTIVE,
    DONE,
    FAILED,
    RUNNING,
    SUBMITTING,
    SUCCEEDED,
    UNKNOWN,
    GenRequest,
    Provider,
    Task,
)
from pipelines.providers.errors import (
    BudgetExceeded,
    ProviderAuthError,
    ProviderError,
    ResultExpired,
    TaskFailed,
)
from pipelines.providers.journal import Journal
from pipelines.providers.pricing import Budget, PriceLookup, Quote, unit_price
from pipelines.providers.secrets import get_logger, redact

log = get_logger(__name__)

UsageSink = Callable[[list[UsageRecord]], None]
SEED_MAX = 2**31 - 1


class Stopped(ReelForgeError):
    """The run was stopped; the journal keeps every task, the next run resumes them."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str  # unique within the project; the journal's key
    provider: str
    request: GenRequest
    retries: int = 2  # failed tasks sent again with a new seed


@dataclass(frozen=True, slots=True)
class Step:
    """A job whose request depends on what the previous step of its chain made."""

    job: Job  # the template (quoted as is)
    bind: Callable[[Job, JobResult], Job | None]  # returns the job to run, or None to skip


@dataclass(slots=True)
class JobResult:
    job: Job
    status: str  # done | reused | failed | skipped
    files: list[Path] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    task_id: str = ""
    attempts: int = 0
    seed: int | None = None
    cost: Decimal | None = None  # yuan, exact, priced from the provider's usage report
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "reused")


def seed_for(base: int | None, name: str, attempt: int) -> int:
    """A new seed for each attempt, reproducible from the job's name."""
    start = base if base is not None else int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return (start + attempt * 7919) % SEED_MAX


def store_sink(store: Any, run_id: str) -> UsageSink:
    """Usage records into the project's ``usage.sqlite`` (the store's file, one connection per
    worker thread: SQLite connections stay in their thread); a record already there is skipped."""
    import sqlite3

    from core.usage import UsageStore

    path = Path(store.path) if hasattr(store, "path") else Path(store)
    local = threading.local()

    def sink(records: list[UsageRecord]) -> None:
        conn = getattr(local, "store", None)
        if conn is None:
            conn = local.store = UsageStore(path)
        for rec in records:
            try:
                conn.add(run_id, [rec])
            except sqlite3.IntegrityError:
                log.info("usage record %s is already stored", rec.event_id)

    return sink


class TaskRunner:
    """Runs jobs for one project. Thread-safe; one instance per run."""

    def __init__(self, project: str | Path, providers: Mapping[str, Provider], *, prices: PriceLookup | None = None,
                 budget: Budget | None = None, usage_sink: UsageSink | None = None, stage: str = "synth",
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 cancel: threading.Event | None = None, rng: random.Random | None = None) -> None:
        self.project = Path(project)
        self.journal = Journal(self.project)
        self.providers = dict(providers)
        self.prices = prices
        self.budget = budget or Budget(None)
        self.usage_sink = usage_sink
        self.stage = stage
        self.sleep = sleep
        self.clock = clock
        self.cancel = cancel or threading.Event()
        self.rng = rng or random.Random()
        self._sems = {name: threading.BoundedSemaphore(p.settings.concurrency) for name, p in self.providers.items()}
        self._checked: set[str] = set()
        self._check_lock = threading.Lock()
        self.submissions = 0  # create calls sent in this run
        self._count_lock = threading.Lock()
        self._reserved: dict[tuple[str, int], Decimal] = {}  # budget held for calls of this run
        self._requests: dict[tuple[str, int], GenRequest] = {}  # the request each attempt was sent with

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- planning ------------------------------------------------------------------------------
    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise ReelForgeError(f"provider {name!r} is not set up for this run",
                                 hint=f"set up: {', '.join(self.providers) or 'none'}") from None

    def cached(self, job: Job, request_hash: str | None = None) -> bool:
        """True when the journal holds this job finished with its files in the project."""
        task = self.journal.latest(job.name)
        if task is None or task.status != DONE:
            return False
        if request_hash is not None and task.request_hash != request_hash:
            return False
        return bool(task.files) and all(self.journal.file(f).exists() for f in task.files)

    def quote(self, chains: Sequence[Sequence[Job | Step]], day: date | None = None) -> Quote:
        """The cost of running ``chains``; jobs already made are listed as cached (free)."""
        day = day or date.today()
        q = Quote()
        for chain in chains:
            upstream_cached = True
            for item in chain:
                job = item.job if isinstance(item, Step) else item
                prov = self.provider(job.provider)
                if isinstance(item, Step):
                    is_cached = upstream_cached and self.cached(job)
                else:
                    try:
                        is_cached = self.cached(job, job.request.key())
                    except ReelForgeError:
                        is_cached = False
                upstream_cached = upstream_cached and is_cached
                for units in prov.estimate(job.request):
                    q.add(job.name, prov.name, units, self.prices, day, cached=is_cached)
        return q

    def preflight(self, names: Sequence[str]) -> None:
        """Every provider's keys are present and accepted (free calls) before anything is paid for."""
        for name in dict.fromkeys(names):
            with self._check_lock:
                if name in self._checked:
                    continue
                prov = self.provider(name)
                prov.require_keys()
                prov.check_auth()
                self._checked.add(name)

    # -- running -------------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job], *, quote: Quote | None = None) -> list[JobResult]:
        """Run independent jobs concurrently (each its own chain)."""
        results = self.run_chains([[j] for j in jobs], quote=quote)
        return [r[0] for r in results]

    def run_chains(self, chains: Sequence[Sequence[Job | Step]], *, quote: Quote | None = None,
                   on_result: Callable[[JobResult], None] | None = None) -> list[list[JobResult]]:
        """Run chains concurrently, the steps of each in order. Budget and keys are checked first."""
        if not chains:
            return []
        q = quote if quote is not None else self.quote(chains)
        self.budget.check_quote(q)
        names = [(i.job if isinstance(i, Step) else i).provider for chain in chains for i in chain]
        self.preflight(names)
        workers = min(64, len(chains))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="provider") as pool:
            futures = [pool.submit(self._run_chain, chain, on_result) for chain in chains]
            out = []
            for fut in futures:
                out.append(fut.result())
        return out

    def _run_chain(self, chain: Sequence[Job | Step], on_result: Callable[[JobResult], None] | None) -> list[JobResult]:
        results: list[JobResult] = []
        previous: JobResult | None = None
        for item in chain:
            if isinstance(item, Step):
                if previous is None or not previous.ok:
                    res = JobResult(item.job, "skipped", error="the previous step did not finish")
                    results.append(res)
                    previous = res
                    continue
                bound = item.bind(item.job, previous)
                if bound is None:
                    res = JobResult(item.job, "skipped", error="not needed")
                    results.append(res)
                    previous = res
                    continue
                job = bound
            else:
                job = item
            res = self.run_job(job)
            results.append(res)
            if on_result is not None:
                on_result(res)
            previous = res
        return results

    def run_job(self, job: Job) -> JobResult:
        """Run one job to the end: reused, done or failed (errors that must stop the run are raised)."""
        started = self.clock()
        prov = self.provider(job.provider)
        rh = job.request.key()
        task = self.journal.latest(job.name)
        notes: list[str] = []
        if task is not None and task.request_hash == rh:
            if task.status == DONE and task.files and all(self.journal.file(f).exists() for f in task.files):
                return JobResult(job, "reused", [self.journal.file(f) for f in task.files], list(task.hashes),
                                 task.task_id, task.attempt + 1, task.report.get("seed"))
            if task.status in (SUBMITTING, UNKNOWN) and prov.idempotent_submit and prov.find(task):
                log.info("%s: %s found at %s by its idempotency key; polling it", job.name, task.task_id, prov.name)
                self.journal.save(task)
            elif task.status in (SUBMITTING, UNKNOWN):
                note = (f"{job.name}: a previous run was stopped while sending attempt {task.attempt + 1} to "
                        f"{prov.name}; it may have been billed without a result, sending again")
                log.warning(note)
                notes.append(note)
                task.status, task.error = UNKNOWN, "stopped while sending; sent again"
                self.journal.save(task)
                task = None
            elif task.status == DONE:  # files were removed from the project: make them again
                task = None
            elif task.status == SUCCEEDED and any(not o.url for o in task.outputs):
                # a synchronous API answered with the result inline and the run stopped before it was saved
                note = (f"{job.name}: a previous run was stopped before saving the result of {prov.name} "
                        f"attempt {task.attempt + 1} (billed); making it again")
                log.warning(note)
                notes.append(note)
                task.status, task.error = FAILED, "stopped before the inline result was saved"
                self.journal.save(task)
                task = None
            elif task.status not in ACTIVE:
                task = None
        else:
            task = None
        last = self.journal.latest(job.name)
        next_attempt = 0 if last is None else last.attempt + 1
        failures = sum(1 for t in self.journal.attempts(job.name) if t.request_hash == rh and t.status == FAILED)
        while True:
            if self.cancel.is_set():
                raise Stopped("stopped by the user", hint="run the same command again to resume")
            try:
                with self._sems[prov.name]:  # the provider's concurrency: from the create call to the download
                    if task is None:
                        next_attempt += 1
                        task = self._submit(prov, job, next_attempt - 1, failures)
                    key = (task.job, task.attempt)
                    self._wait(prov, task)
                    cost = self._record_usage(prov, job, task, started)
                    self._download(prov, task)
                self.budget.settle(self._reserved.pop(key, Decimal(0)), cost)
                task.status = DONE
                self.journal.save(task)
                return JobResult(job, "done", [self.journal.file(f) for f in task.files], list(task.hashes),
                                 task.task_id, task.attempt + 1, task.report.get("seed"), cost,
                                 self.clock() - started, notes=notes)
            except TaskFailed as e:
                task = task or getattr(e, "task", None)
                assert task is not None
                self.budget.release(self._reserved.pop((task.job, task.attempt), Decimal(0)))
                task.status, task.error = FAILED, e.message
                self.journal.save(task)
                failures += 1
                if failures > job.retries:
                    return JobResult(job, "failed", task_id=task.task_id, attempts=task.attempt + 1,
                                     error=e.message, seconds=self.clock() - started, notes=notes)
                note = f"{job.name}: {prov.name} failed the task ({e.message}); sending again with a new seed"
                log.warning(note)
                notes.append(note)
                task = None
            except (ProviderAuthError, BudgetExceeded, Stopped):
                raise
            except ResultExpired as e:
                assert task is not None
                self.budget.settle(self._reserved.pop((task.job, task.attempt), Decimal(0)), None)
                task.status, task.error = FAILED, e.message
                self.journal.save(task)
                return JobResult(job, "failed", task_id=task.task_id, attempts=task.attempt + 1, error=e.message,
                                 seconds=self.clock() - started, notes=notes)
            except ProviderError as e:
                task = task or getattr(e, "task", None)
                if task is not None and task.status == SUBMITTING:
                    task.status = UNKNOWN if e.code == "unknown_state" else FAILED
                    task.error = e.message
                    reserved = self._reserved.pop((task.job, task.attempt), Decimal(0))
                    # a call that may have been billed keeps its reservation as spent
                    if task.status == UNKNOWN:
                        self.budget.settle(reserved, None)
                    else:
                        self.budget.release(reserved)
                    self.journal.save(task)
                return JobResult(job, "failed", task_id=task.task_id if task else "",
                                 attempts=(task.attempt + 1) if task else 0, error=e.message,
                                 seconds=self.clock() - started, notes=notes)

    # -- the steps -----------------------------------------------------------------------------
    def _submit(self, prov: Provider, job: Job, attempt: int, failures: int) -> Task:
        req = job.request
        if failures:
            req = dataclasses.replace(req, seed=seed_for(req.seed, job.name, failures))
        units = prov.estimate(req)
        prices = [unit_price(self.prices, u, date.today()) for u in units]
        cost = None if any(p is None for p in prices) else sum(
            (p * u.quantity for p, u in zip(prices, units, strict=True) if p is not None), Decimal(0))
        reserved = self.budget.reserve(cost, job.name)
        task = Task(job=job.name, provider=prov.name, model=req.model, kind=req.kind, request_hash=job.request.key(),
                    idempotency_key=uuid.uuid4().hex, attempt=attempt, status=SUBMITTING, submitted_at=time.time(),
                    report={"seed": req.seed, "request": _describe(req)})
        self._reserved[(task.job, attempt)] = reserved
        self._requests[(task.job, attempt)] = req
        self.journal.save(task)  # the intent, before the call that may cost money
        with self._count_lock:
            self.submissions += 1
        try:
            prov.submit(req, task)
        except ProviderError as e:
            e.task = task  # type: ignore[attr-defined]  # the handler needs the journal row
            raise
        if task.status == SUBMITTING:
            task.status = RUNNING if task.task_id else UNKNOWN
        self.journal.save(task)  # the task id, before the first poll
        return task

    def _wait(self, prov: Provider, task: Task) -> None:
        if task.status == SUCCEEDED and task.outputs:
            return
        if not task.task_id:
            raise ProviderError(prov.name, f"{task.job}: the provider returned no task id")
        s = prov.settings
        delay = s.poll_first_s
        started = self.clock()
        deadline = started + s.task_timeout_s
        while True:
            self._sleep(delay)
            before = (task.status, task.provider_status, len(task.outputs))
            prov.poll(task)
            if (task.status, task.provider_status, len(task.outputs)) != before:
                self.journal.save(task)
            if task.status == SUCCEEDED:
                return
            if task.status == FAILED:
                raise TaskFailed(prov.name, task.error or f"task {task.task_id} failed")
            if self.clock() > deadline:
                raise ProviderError(prov.name, f"task {task.task_id} is still {task.provider_status or 'running'} "
                                    f"after {s.task_timeout_s:.0f}s; it stays in the journal and the next run "
                                    "polls it again", hint=f"raise [providers.{prov.name}] task_timeout_s")
            # back off x1.5, but never wait longer than poll_fraction of the time the task has taken so far:
            # a result is noticed within ~7% of the task's own time, whatever its length
            elapsed = self.clock() - started
            cap = min(s.poll_max_s, max(s.poll_first_s, s.poll_fraction * elapsed))
            delay = min(cap, delay * 1.5 * self.rng.uniform(0.8, 1.2))

    def _sleep(self, seconds: float) -> None:
        if self.sleep is time.sleep:  # a real wait that a stop request cuts short
            stopped = self.cancel.wait(seconds)
        else:  # an injected clock (tests, benchmarks)
            self.sleep(seconds)
            stopped = self.cancel.is_set()
        if stopped:
            raise Stopped("stopped by the user", hint="run the same command again to resume")

    def _record_usage(self, prov: Provider, job: Job, task: Task, started: float) -> Decimal | None:
        """Usage records from the provider's report, once per task; the priced cost in fen."""
        req = self._requests.pop((task.job, task.attempt), None)
        if req is None:  # a task resumed from the journal: the job's request with the seed it was sent with
            req = dataclasses.replace(job.request, seed=task.report.get("seed", job.request.seed))
        units = prov.usage(task, req)
        day = date.today()
        total: Decimal | None = Decimal(0)
        records = []
        for u in units:
            price = unit_price(self.prices, u, day)
            if price is None or total is None:
                total = None
            else:
                total += price * u.quantity
            ident = f"{prov.name}|{task.task_id or task.idempotency_key}|{job.name}|{task.attempt}|{u.unit}"
            detail: dict[str, Any] = {"job": job.name, "task_id": task.task_id, "provider_model": task.model,
                                      "attempt": task.attempt + 1, "request_hash": task.request_hash,
                                      "price_yuan_per_unit": None if price is None else str(price)}
            detail.update({k: v for k, v in u.detail.items()})
            records.append(UsageRecord(stage=self.stage, engine=prov.name, unit=u.unit, quantity=u.quantity,
                                       model=u.price_key, device="remote", vendor=prov.vendor,
                                       seconds=Decimal(int((self.clock() - started) * 1000)) / 1000,
                                       detail=detail, event_id=hashlib.sha256(ident.encode()).hexdigest()[:32]))
        if self.usage_sink is not None and records and not self.journal.usage_recorded(job.name, task.attempt):
            self.usage_sink(records)
        self.journal.mark_usage_recorded(job.name, task.attempt)
        task.report["units"] = [{"unit": u.unit, "quantity": str(u.quantity), "price_key": u.price_key}
                                for u in units]
        return total

    def _download(self, prov: Provider, task: Task) -> None:
        if not task.outputs:
            raise TaskFailed(prov.name, f"task {task.task_id} succeeded with no result")
        files, hashes = [], []
        refreshed = False
        i = 0
        while i < len(task.outputs):
            out = task.outputs[i]
            try:
                if out.data is not None:
                    tmp_dir = self.journal.tmp_dir()
                    sha = hashlib.sha256(out.data).hexdigest()
                    tmp = tmp_dir / f".inline-{uuid.uuid4().hex}{out.suffix}"
                    tmp.write_bytes(out.data)
                    size = len(out.data)
                else:
                    tmp, sha, size = prov.http.download(out.url, self.journal.tmp_dir(), suffix=out.suffix,
                                                        headers=prov.download_headers(out) if out.via_api else None,
                                                        via_api=out.via_api)
            except ResultExpired:
                if refreshed:
                    raise ResultExpired(prov.name, f"the results of task {task.task_id} expired and no fresh URL "
                                        "was given", hint="the task was billed; run again to make it anew") from None
                log.info("%s: result URL of %s expired; asking %s for a fresh one", task.job, task.task_id, prov.name)
                prov.refresh(task)
                self.journal.save(task)
                refreshed = True
                continue
            files.append(self.journal.store(tmp, sha, out.suffix))
            hashes.append(sha)
            log.info("%s: %s result %d (%d bytes, sha256 %s)", task.job, prov.name, i, size, sha[:12])
            i += 1
        task.files, task.hashes = files, hashes
        for out in task.outputs:
            out.data = None  # kept on disk now


def _describe(req: GenRequest) -> dict[str, Any]:
    """What was asked, for the journal (no file contents; paths are the project's own)."""
    return {"kind": req.kind, "model": req.model, "prompt": redact(req.prompt)[:500], "seed": req.seed,
            "size": [req.width, req.height], "duration": req.duration, "voice": req.voice,
            "references": [str(p) for p in req.references], "image": str(req.image) if req.image else "",
            "text_chars": len(req.text)}


__all__ = ["ACTIVE", "Job", "JobResult", "Step", "Stopped", "TaskRunner", "seed_for", "store_sink"]
