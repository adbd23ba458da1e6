"""Crash and concurrency tests with real processes: kill -9 in the middle of a burst of writes,
and two writers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
USCC_STUDIO = "91350100M000100Y43"
USCC_VENDOR = "91330100716105852F"

# A writer: usage rows in batches (one transaction each) interleaved with invoices and payments,
# so the chain runs through several tables. It prints a line only after a commit has returned.
WRITER = r"""
import os, sys, time
from ledger import Ledger

db, tag, batches, batch, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lg = Ledger(db, timeout=60)
if go:
    print("ready", flush=True)
    while not os.path.exists(go):  # start together with the other writer
        time.sleep(0.002)
prefix = {"A": 1, "B": 2, "K": 3}[tag]
for b in range(batches):
    rows = [{
        "project_id": None, "source": "writer-" + tag, "run_id": f"{tag}-{b}", "event_id": f"{tag}-{b}-{i}",
        "event_at": "2025-03-01T00:00:00+00:00", "event_date": "2025-03-01", "stage": "synth",
        "engine": "espeak-ng", "model": "", "device": "cpu", "vendor": "", "unit": "cpu_second",
        "quantity": "1.5", "seconds": "1.5", "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0, "licence": "",
        "detail": "{}", "price_id": None, "unit_price": "0", "price_per": 1, "price_example": 0, "amount_micro": 0,
    } for i in range(batch)]
    lg.usage.add_rows(rows)
    number = f"25111{prefix}{b:014d}"
    lg.documents.add_invoice("深度求索", number, "2025-03-01", "100.00", "6.00", "106.00")
    lg.documents.add_payment(number, "2025-03-02", "106.00", bank_ref=f"{tag}{b}")
    print(f"committed {b + 1}", flush=True)
    time.sleep(0.001)  # a writer does some work between its commits
lg.close()
"""


def _setup(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.sqlite"
    with Ledger(db) as lg:
        lg.master.add_company("影锻文化", USCC_STUDIO, 3)
        lg.master.add_vendor("深度求索", USCC_VENDOR)
    return db


def _spawn(db: Path, tag: str, batches: int, batch: int, go: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, str(batches), str(batch), str(go or "")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_burst_keeps_every_commit_and_the_chain(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    batch = 2000
    proc = _spawn(db, "K", 1000, batch)
    committed = 0
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while committed < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line.split()[1])
    assert committed >= 4, proc.stderr.read() if proc.stderr else ""
    time.sleep(0.03)  # land inside the next batch's transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Ledger(db) as lg:
        report = lg.verify()
        assert report.ok, report.summary()
        usage = lg.store.conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]
        invoices = lg.store.conn.execute("SELECT COUNT(*) FROM invoices").fetchone()[0]
        # every batch the writer reported is there, and no batch is there in part
        assert usage >= committed * batch and usage % batch == 0
        assert invoices >= committed
        # the ledger takes writes after the crash and still verifies
        lg.documents.add_invoice("深度求索", "25111900000000000001", "2025-03-03", "1.00", "0.06", "1.06")
        assert lg.verify().ok


def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    db = _setup(tmp_path)
    batches, batch = 40, 25
    go = tmp_path / "go"
    procs = [_spawn(db, tag, batches, batch, go) for tag in ("A", "B")]
    for p in procs:  # both have opened the ledger
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip().splitlines()[-1] == f"committed {batches}"
    with Ledger(db) as lg:
        report = lg.verify()
        assert report.ok, report.summary()
        conn = lg.store.conn
        assert conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] == 2 * batches * batch
        for tag in ("A", "B"):
            ids = {r[0] for r in conn.execute("SELECT event_id FROM usage_events WHERE source = ?", (f"writer-{tag}",))}
            assert ids == {f"{tag}-{b}-{i}" for b in range(batches) for i in range(batch)}
        assert len(lg.documents.invoices()) == 2 * batches
        assert len(lg.documents.payments()) == 2 * batches
        # the writes really interleaved in the one chain
        order = [r[0] for r in conn.execute("SELECT source FROM usage_events ORDER BY seq")]
        switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
        assert switches >= 2, "the two writers did not overlap"
