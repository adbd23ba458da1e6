"""The runner around the adapters: never pay twice (a SIGKILLed run resumes), budget stops before
any submission, per-provider concurrency, keys from the environment or a 0600 file and never in
a file, a log, usage.sqlite or an error."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from core.config import load_config
from core.errors import ConfigError
from core.usage import UsageStore
from pipelines.providers import PROVIDERS, GenRequest, ProviderSettings, create
from pipelines.providers.base import SUBMITTING, Task
from pipelines.providers.errors import BudgetExceeded, ProviderAuthError
from pipelines.providers.pricing import Budget
from pipelines.providers.runner import Job, TaskRunner, store_sink
from pipelines.providers.secrets import Secret, get_secret, redact
from tests.support.providers import FakeArk, FakeKling, FakeMiniMax
from tests.test_providers import KEY, KLING_SECRET, Clock, prices

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def frame(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "project" / "first_frame.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (72, 128), (200, 80, 20)).save(path)
    return path


def video_jobs(provider: str, n: int, image: Path) -> list[Job]:
    sys.path.insert(0, str(ROOT))
    from tests.support.providers.run_jobs import jobs

    return jobs(provider, n, image)


def journal_rows(project: Path) -> list[tuple[str, str, str]]:
    path = project / "providers" / "journal.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT job, status, task_id FROM tasks").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def spawn(project: Path, provider: str, base_url: str, n: int, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.support.providers.run_jobs", str(project), provider, base_url,
                             str(n)], cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond: object, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.mark.parametrize(("provider", "env"), [
    ("ark", {"ARK_API_KEY": KEY}),
    ("kling", {"KLING_ACCESS_KEY": KEY, "KLING_SECRET_KEY": KLING_SECRET}),
])
def test_sigkill_while_tasks_in_flight_then_resume_submits_nothing_twice(tmp_path: Path, frame: Path, provider: str,
                                                                          env: dict[str, str]) -> None:
    project = frame.parent
    n = 4
    fake_cls = FakeArk if provider == "ark" else FakeKling
    kwargs = {"secret": KLING_SECRET} if provider == "kling" else {}
    with fake_cls(latency_s=600, **kwargs) as fake:  # type: ignore[arg-type]
        proc = spawn(project, provider, fake.base_url, n, env)
        try:
            # every task is at the provider and its id is in the journal: the run is paying and waiting
            wait_for(lambda: sum(1 for r in journal_rows(project) if r[2]) == n and fake.counts["status"] >= 1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert fake.counts["submit"] == n
        fake.latency_s = 0.0
        proc2 = spawn(project, provider, fake.base_url, n, env)
        out, errs = proc2.communicate(timeout=120)
        assert proc2.returncode == 0, errs
        assert out.count(" done") == n, out
        assert fake.counts["submit"] == n, "a resumed run sent a task again"
        # a third run reuses everything: no request that costs money, no poll
        polls = fake.counts["status"]
        proc3 = spawn(project, provider, fake.base_url, n, env)
        out3, _ = proc3.communicate(timeout=120)
        assert out3.count(" reused") == n
        assert fake.counts["submit"] == n and fake.counts["status"] == polls


def test_kill_during_the_create_call_is_found_by_the_idempotency_key(tmp_path: Path, frame: Path) -> None:
    """Kling keys a task by our external_task_id: a run stopped between sending and saving the id
    finds the task instead of paying again."""
    clock = Clock()
    project = frame.parent
    job = video_jobs("kling", 1, frame)[0]
    with FakeKling(secret=KLING_SECRET) as fake:
        prov = PROVIDERS.create("kling", ProviderSettings(base_url=fake.base_url, poll_first_s=0.1),
                                env={"KLING_ACCESS_KEY": KEY, "KLING_SECRET_KEY": KLING_SECRET}, sleep=clock.sleep)
        with TaskRunner(project, {"kling": prov}, sleep=clock.sleep, clock=clock.time) as r:
            # what a killed run leaves: the intent committed, the create call received by Kling, no task id saved
            task = Task(job=job.name, provider="kling", model=job.request.model, kind="video",
                        request_hash=job.request.key(), idempotency_key="ext-0001", status=SUBMITTING)
            r.journal.save(task)
            fake.new_task("video", {}, external_id="ext-0001").extra["endpoint"] = "videos/image2video"
            res = r.run([job])[0]
        assert res.status == "done", res.error
        assert fake.counts["submit"] == 1


def test_stopped_mid_send_without_a_key_is_reported_and_sent_again(tmp_path: Path, frame: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    project = frame.parent
    job = video_jobs("ark", 1, frame)[0]
    with FakeArk() as fake:
        prov = PROVIDERS.create("ark", ProviderSettings(base_url=fake.base_url, poll_first_s=0.1),
                                env={"ARK_API_KEY": KEY}, sleep=clock.sleep)
        with TaskRunner(project, {"ark": prov}, sleep=clock.sleep, clock=clock.time) as r:
            r.journal.save(Task(job=job.name, provider="ark", model=job.request.model, kind="video",
                                request_hash=job.request.key(), idempotency_key="x", status=SUBMITTING))
            with caplog.at_level(logging.WARNING):
                res = r.run([job])[0]
    assert res.status == "done"
    assert any("may have been billed" in n for n in res.notes)
    assert "may have been billed" in caplog.text


def test_budget_below_the_quote_stops_before_any_submission(tmp_path: Path, frame: Path) -> None:
    clock = Clock()
    with FakeArk() as fake:
        prov = PROVIDERS.create("ark", ProviderSettings(base_url=fake.base_url), env={"ARK_API_KEY": KEY},
                                sleep=clock.sleep)
        jobs = video_jobs("ark", 3, frame)
        with TaskRunner(frame.parent, {"ark": prov}, prices=prices(), budget=Budget(Decimal("1.00")),
                        sleep=clock.sleep, clock=clock.time) as r:
            quote = r.quote([[j] for j in jobs])
            assert quote.priced and quote.total > Decimal("1.00")
            with pytest.raises(BudgetExceeded) as info:
                r.run(jobs)
        assert fake.requests == []  # not even the free key check
    assert "budget" in str(info.value) and "nothing was sent" in (info.value.hint or "")


def test_budget_is_reserved_per_call_so_concurrent_calls_cannot_overshoot(tmp_path: Path, frame: Path) -> None:
    clock = Clock()
    with FakeArk() as fake:
        prov = PROVIDERS.create("ark", ProviderSettings(base_url=fake.base_url, poll_first_s=0.01),
                                env={"ARK_API_KEY": KEY}, sleep=clock.sleep)
        jobs = video_jobs("ark", 3, frame)
        with TaskRunner(frame.parent, {"ark": prov}, prices=prices(), budget=Budget(Decimal("3.50")),
                        sleep=clock.sleep, clock=clock.time) as r:
            one = r.quote([[jobs[0]]]).total
            assert 2 * one <= Decimal("3.50") < 3 * one
            with pytest.raises(BudgetExceeded):
                r.run(jobs, quote=r.quote([[jobs[0]]]))  # a caller's stale quote: the per-call check still holds
        assert fake.counts["submit"] <= 2


def test_per_provider_concurrency_limit(tmp_path: Path, frame: Path) -> None:
    with FakeMiniMax(latency_s=0.3) as fake:
        prov = PROVIDERS.create("minimax", ProviderSettings(base_url=fake.base_url, concurrency=2, poll_first_s=0.05,
                                                            poll_max_s=0.05), env={"MINIMAX_API_KEY": KEY})
        with TaskRunner(frame.parent, {"minimax": prov}) as r:
            results = r.run(video_jobs("minimax", 6, frame))
    assert all(res.status == "done" for res in results)
    assert fake.max_in_flight == 2


def test_secrets_never_reach_files_logs_usage_or_errors(tmp_path: Path, frame: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-LEAKCHECK-7f3a9c1e5b2d4f60"
    project = frame.parent
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG), FakeArk(key=secret, rate_limit=1, fail_tasks=1) as fake:
        prov = PROVIDERS.create("ark", ProviderSettings(base_url=fake.base_url, poll_first_s=0.01),
                                env={"ARK_API_KEY": secret}, sleep=lambda s: None)
        store = UsageStore(project / "usage.sqlite")
        run_id = store.start_run("leak test")
        with TaskRunner(project, {"ark": prov}, prices=prices(), usage_sink=store_sink(store, run_id)) as r:
            results = r.run(video_jobs("ark", 2, frame))
        store.close()
        assert all(res.ok for res in results)
        # a refused key, and an error whose text echoes the key back
        bad = PROVIDERS.create("ark", ProviderSettings(base_url=fake.base_url), env={"ARK_API_KEY": secret + "x"})
        try:
            bad.check_auth()
        except ProviderAuthError as e:
            errors.append(str(e) + repr(e.to_dict()))
        logging.getLogger("pipelines.providers.http").warning("echo %s", secret)
    from pipelines.providers.errors import ProviderError

    errors.append(str(ProviderError("ark", f"server said: bad key {secret}")))
    assert all(secret not in e for e in errors), errors
    assert secret not in caplog.text
    for path in project.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert repr(Secret("X", secret)) == "Secret(X=***)" and str(Secret("X", secret)) == "***"


def test_secrets_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "secrets.toml"
    f.write_text('ARK_API_KEY = "from-the-file-123456"\n', encoding="utf-8")
    f.chmod(0o644)
    env = {"REELFORGE_SECRETS": str(f)}
    with pytest.raises(ConfigError) as info:
        get_secret("ARK_API_KEY", env)
    assert "chmod 600" in (info.value.hint or "") and "from-the-file" not in str(info.value)
    f.chmod(0o600)
    key = get_secret("ARK_API_KEY", env)
    assert key is not None and key.reveal() == "from-the-file-123456"
    assert get_secret("ARK_API_KEY", {**env, "ARK_API_KEY": "from-env-abcdef"}).reveal() == "from-env-abcdef"  # type: ignore[union-attr]
    assert redact("x from-the-file-123456 y") == "x *** y"


def test_base_url_from_config_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[providers.ark]\nbase_url = "https://ark.example.test/api/v3"\nconcurrency = 6\n', encoding="utf-8")
    config = load_config(cfg, env={"REELFORGE_PROVIDERS__KLING__BASE_URL": "http://127.0.0.1:9/"})
    ark = create("ark", config)
    assert ark.base_url == "https://ark.example.test/api/v3" and ark.settings.concurrency == 6
    assert create("kling", config).base_url == "http://127.0.0.1:9"
    assert create("dashscope", config).base_url == "https://dashscope.aliyuncs.com/api/v1"
    assert create("minimax", config).base_url == "https://api.minimaxi.com"
    with pytest.raises(Exception, match="concurrency"):
        create("ark", load_config(cfg, env={"REELFORGE_PROVIDERS__ARK__CONCURRENCY": "0"}))


def test_voice_request_needs_text() -> None:
    with pytest.raises(Exception, match="text"):
        GenRequest("voice", "speech-02-hd", text="  ")
