"""Ledger benchmark: ``python -m benchmarks.ledger_bench [--events 100000]``.

Measures, on this machine and in one run:

- baseline: the same usage rows written with a plain ``executemany`` into an un-chained table
  (same WAL + synchronous=FULL settings), so the cost of pricing and hash-chaining shows;
- ``import-usage`` end to end (read the project's usage.sqlite, price, hash, insert, one commit);
- the batched insert API (:meth:`ledger.services.UsageService.add_rows`, rows already priced);
- invoices + payments entered one transaction each (the interactive path);
- ``verify`` over the whole chain; the claim (best plan) and the full export (XLSX, CSVs, PDF,
  evidence ZIP with every usage event).

Targets from the issue: insert >= 20,000 rows/s batched; verify and claim + export each < 10 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.usage import UsageRecord, UsageStore

USCC_STUDIO = "91350100M000100Y43"
USCC_VENDOR = "91330100716105852F"
USCC_RENTAL = "91110108551385082Q"


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu or 'unknown CPU'}, {os.cpu_count()} logical cores, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def make_source(folder: Path, events: int) -> None:
    """A project's usage.sqlite with ``events`` records across a few runs, units and models."""
    kinds: list[tuple[str, str, str, str, int | Decimal, str]] = [
        ("script", "llm", "deepseek-chat", "input_token", 1200, "deepseek"),
        ("script", "llm", "deepseek-chat", "output_token", 400, "deepseek"),
        ("script", "llm", "deepseek-chat", "cached_token", 800, "deepseek"),
        ("synth", "espeak-ng", "", "cpu_second", Decimal("2.5"), ""),
        ("enhance", "realesrgan", "animevideov3", "gpu_second", Decimal("0.75"), ""),
    ]
    with UsageStore(folder / "usage.sqlite") as store:
        per_run = 10_000
        for start in range(0, events, per_run):
            run = store.start_run("bench", run_id=f"bench-{start // per_run:04d}")
            records = []
            for i in range(start, min(start + per_run, events)):
                stage, engine, model, unit, qty, vendor = kinds[i % len(kinds)]
                records.append(UsageRecord(stage, engine, unit, Decimal(qty) + i % 7, model=model, vendor=vendor,
                                           event_id=f"ev{i:08d}"))
            store.add(run, records)


def baseline_insert(path: Path, rows: list[tuple[Any, ...]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE u (event_id TEXT, run_id TEXT, created_at TEXT, stage TEXT, engine TEXT, model TEXT, "
                 "device TEXT, unit TEXT, quantity TEXT, seconds TEXT, tokens_in INT, tokens_out INT, "
                 "tokens_cached INT, vendor TEXT, licence TEXT, detail TEXT, UNIQUE (run_id, event_id))")
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO u VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ledger_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--invoices", type=int, default=200)
    ap.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    args = ap.parse_args(argv)

    from ledger import Ledger
    from ledger.export import export_claim_package

    load_at_start = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, int, float, str, str]] = []  # step, rows, seconds, target, verdict

    def add(step: str, rows: int, seconds: float, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        results.append((step, rows, seconds, target, verdict))
        print(f"  {step}: {seconds:.2f} s", file=sys.stderr, flush=True)

    try:
        project = work / "bench-project"
        t = time.perf_counter()
        make_source(project, args.events)
        add("write the project's usage.sqlite (core.usage, setup)", args.events, time.perf_counter() - t)

        src = sqlite3.connect(project / "usage.sqlite")
        rows = src.execute("SELECT event_id, run_id, created_at, stage, engine, model, device, unit, quantity, seconds,"
                           " tokens_in, tokens_out, tokens_cached, vendor, licence, detail FROM usage_events").fetchall()
        src.close()
        seconds = baseline_insert(work / "baseline.sqlite", rows)
        add("baseline: plain executemany, no pricing or chain", len(rows), seconds)

        lg = Ledger(work / "ledger.sqlite")
        lg.master.add_company("基准测试影视有限公司", USCC_STUDIO, 8)
        lg.master.add_vendor("深度求索", USCC_VENDOR, aliases=["deepseek"])
        lg.master.add_vendor("影棚租赁", USCC_RENTAL)
        lg.master.add_project("bench-project", work_type="micro_drama", source_ip="某网文", source_kind="web_literature")
        lg.prices.import_toml(None)

        t = time.perf_counter()
        imported = lg.usage.import_project(project)
        seconds = time.perf_counter() - t
        add("import-usage (read, price, hash-chain, insert; one commit)", imported.imported, seconds,
            ">= 20,000 rows/s", imported.imported / seconds >= 20_000)
        again = time.perf_counter()
        skipped = lg.usage.import_project(project).skipped
        add("import-usage again (idempotent: all skipped)", skipped, time.perf_counter() - again)

        lg2 = Ledger(work / "ledger-api.sqlite")
        lg2.master.add_company("基准测试影视有限公司", USCC_STUDIO, 8)
        prepared = lg.store.query(
            "SELECT project_id, source, run_id, event_id, event_at, event_date, stage, engine, model, device, vendor,"
            " unit, quantity, seconds, tokens_in, tokens_out, tokens_cached, licence, detail, NULL AS price_id,"
            " unit_price, price_per, price_example, amount_micro FROM usage_events ORDER BY seq")
        for r in prepared:
            r["project_id"] = None
        t = time.perf_counter()
        lg2.usage.add_rows(prepared, batch=5000)
        seconds = time.perf_counter() - t
        add("lg.usage.add_rows (batched 5,000 per executemany)", len(prepared), seconds,
            ">= 20,000 rows/s", len(prepared) / seconds >= 20_000)
        lg2.close()

        year = date.today().year
        today = date.today()
        t = time.perf_counter()
        for i in range(args.invoices):
            day = date(year, 1 + i % min(today.month, 12), 1 + i % 28)
            if day > today:
                day = today
            number = f"{year % 100:02d}111{i + 1:015d}"
            shooting = i % 4 == 0
            lg.documents.add_invoice("影棚租赁" if shooting else "深度求索", number, day, "1234.56", "74.07", "1308.63",
                           category="shooting" if shooting else "ai_tech", project="bench-project" if i % 2 else None)
            lg.documents.add_payment(number, day, "1308.63", bank_ref=f"BANK{i:06d}")
        add("invoice add + payment add, one commit each", 2 * args.invoices, time.perf_counter() - t)

        t = time.perf_counter()
        report = lg.verify()
        seconds = time.perf_counter() - t
        assert report.ok, report.summary()
        add("verify (recompute every link)", report.rows, seconds, "< 10 s", seconds < 10)

        t = time.perf_counter()
        plan = lg.claims.plan_best(year)
        t_claim = time.perf_counter() - t
        t = time.perf_counter()
        out = export_claim_package(lg, year, work / "export")
        t_export = time.perf_counter() - t
        add("claim (best plan over both measures)", len(plan.claims), t_claim)
        add("export (XLSX, 6 CSVs, PDF, evidence ZIP)", len(out.files), t_export)
        add("claim + export", args.events, t_claim + t_export, "< 10 s", t_claim + t_export < 10)
        lg.close()
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nLedger benchmark — {args.events:,} usage events, {args.invoices} invoices")
    print(f"machine: {machine()}")
    print(f"load average at the start: {load_at_start} (1/5/15 min; the machine is shared)")
    head: tuple[str, ...] = ("step", "rows", "seconds", "rows/s", "target", "")
    body = [(s, f"{n:,}", f"{sec:.2f}", f"{n / sec:,.0f}" if sec > 0 and n > 1 else "", tgt, v)
            for s, n, sec, tgt, v in results]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in body:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    missed = [r for r in results if r[4] == "MISSED"]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
