"""Ledger CLI commands for the chain and claims: verify, claim, claims, withdraw, reconcile,
export, settings and the audit log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import ReelForgeError
from ledger.api import Ledger
from ledger.cli.output import EXIT_BROKEN, EXIT_OK, print_claim, print_json, table, yuan
from ledger.export import export_claim_package
from ledger.money import format_fen, micro_to_decimal, to_capital


def verify(lg: Ledger, a: argparse.Namespace) -> int:
    report = lg.verify(expect_head=a.expect_head or "", checkpoints=a.checkpoint or [],
                       trusted_keys=a.trust_key or [])
    if a.json:
        print_json({"ok": report.ok, "rows": report.rows, "files_checked": report.files_checked,
                    "checkpoints": report.checkpoints, "chain_head": report.head.hash, "seq": report.head.seq,
               "first_broken": str(report.first_broken) if report.first_broken else None,
               "problems": [str(p) for p in report.problems]})
    if report.ok:
        if not a.json:
            print(report.summary())
        return EXIT_OK
    print(report.summary(), file=sys.stderr)
    for p in report.problems[1:]:
        print(f"  also: {p}", file=sys.stderr)
    return EXIT_BROKEN



def claim(lg: Ledger, a: argparse.Namespace) -> int:
    # verify first: a claim computed from a ledger that does not verify is refused, draft or not
    lg.integrity.require_intact(checkpoints=a.checkpoint or [], trusted_keys=a.trust_key or [],
                                before=f"compute a claim for {a.year}")
    if a.measure == "best":
        plan = lg.claims.plan_best(a.year, project=a.project, company=a.company)
        if a.record:
            if not plan.claims:
                raise ReelForgeError(f"nothing to claim for {a.year}: no eligible invoice")
            plan.claims = lg.claims.record_plan(plan)
        if a.json:
            data = plan.to_json()
            data["chain_head"] = lg.chain_head().hash
            print_json(data)
            return EXIT_OK
        for c in plan.claims:
            print_claim(c)
            print()
        for label, fen in plan.options:
            print(f"方案 option: {label}: {yuan(fen)}")
        for note in plan.notes:
            print(f"从优 best: {note}")
        print(f"建议申报合计 recommended total: {yuan(plan.total_fen)}（{to_capital(plan.total_fen)}）")
        print(f"账簿链头 chain head: {lg.chain_head().hash}")
        return EXIT_OK
    measure = int(a.measure)
    if a.record:
        # the comparison is taken before recording: afterwards the project is held by this claim
        cmp_ = lg.claims.compute(measure, a.year, project=a.project, company=a.company).comparison
        result = lg.claims.record(measure, a.year, project=a.project, company=a.company)
        result.comparison = cmp_
    else:
        result = lg.claims.compute(measure, a.year, project=a.project, company=a.company)
    if a.json:
        data = result.to_json()
        data["chain_head"] = lg.chain_head().hash
        print_json(data)
        return EXIT_OK
    print_claim(result)
    if result.comparison:
        cmp_ = result.comparison
        print(f"比较 comparison: 措施{cmp_['other_measure']} 为 {yuan(cmp_['other_claim_fen'])}；"
              f"建议 recommended: 措施{cmp_['recommended_measure']}（从优不重复 the better one, never both）")
    print(f"账簿链头 chain head: {lg.chain_head().hash}")
    return EXIT_OK


def claims(lg: Ledger, a: argparse.Namespace) -> int:
    items = lg.claims.recorded(a.year, company=a.company)
    if a.json:
        print_json([{"id": c.id, "measure": c.measure, "year": c.year, "project": c.project_name or None,
                "claim_fen": c.claim_fen, "base_fen": c.base_fen, "active": c.active, "withdrawn_by": c.withdrawn_by,
                "lines": c.lines, "created_at": c.created_at} for c in items])
    else:
        print(table(("#", "措施", "年度", "项目", "申报金额", "基数", "发票数", "状态", "登记时间"),
                     [(c.id, c.measure, c.year, c.project_name or "全公司", format_fen(c.claim_fen),
                       format_fen(c.base_fen), c.lines, "有效 active" if c.active else f"已撤回 (#{c.withdrawn_by})",
                       c.created_at) for c in items]))
    return EXIT_OK


def withdraw(lg: Ledger, a: argparse.Namespace) -> int:
    lg.claims.withdraw(a.claim_id, a.reason)
    print(f"已撤回申报 claim #{a.claim_id} withdrawn (a reversal row); its invoices are free again")
    return EXIT_OK


def approve(lg: Ledger, a: argparse.Namespace) -> int:
    s = lg.claims.approve(a.claim_id, a.note)
    print(f"已批准申报 claim #{s.claim_id} approved: 编制 prepared by {s.prepared_by} ({s.prepared_at}), "
          f"批准 approved by {s.approved_by} ({s.approved_at})")
    return EXIT_OK


def reconcile(lg: Ledger, a: argparse.Namespace) -> int:
    rows = lg.recon.reconcile(a.year, period=a.period, company=a.company, record=a.record)
    if a.json:
        print_json([{"vendor": r.vendor_label, "period": r.period, "estimated_micro": r.estimated_micro,
                "unpriced_events": r.unpriced_events, "invoiced_fen": r.invoiced_fen,
                "difference_micro": r.difference_micro} for r in rows])
        return EXIT_OK
    print(table(("供应商 vendor", "期间 period", "用量估算 estimated", "未定价 unpriced", "发票 invoiced", "差额 difference"),
                 [(r.vendor_label, r.period, f"¥{micro_to_decimal(r.estimated_micro)}", r.unpriced_events,
                   yuan(r.invoiced_fen), f"¥{micro_to_decimal(r.difference_micro)}") for r in rows]))
    return EXIT_OK


def export(lg: Ledger, a: argparse.Namespace) -> int:
    r = export_claim_package(lg, a.year, Path(a.out), measure=a.measure, project=a.project, company=a.company,
                             claim_id=a.claim, checkpoints=a.checkpoint or [], trusted_keys=a.trust_key or [])
    for path in r.files:
        print(path)
    print(f"申报补贴合计 total claimed: {yuan(r.total_claim_fen)}（{to_capital(r.total_claim_fen)}）; "
          f"{r.documents} archived document(s) in the evidence ZIP")
    print(f"账簿链头 chain head: {r.chain_head}")
    print(f"签名检查点 signed checkpoint: {r.checkpoint.count} rows, head {r.checkpoint.head}, "
          f"key {r.checkpoint.key} ({r.checkpoint_file})")
    return EXIT_OK


def settings_show(lg: Ledger, a: argparse.Namespace) -> int:
    s = lg.master.settings()
    if a.json:
        print_json(s.to_dict())
    else:
        print(table(("设置 key", "值 value", "说明"), [(k, v, zh) for k, v, zh, _ in s.describe()]))
    return EXIT_OK


def settings_set(lg: Ledger, a: argparse.Namespace) -> int:
    s = lg.master.set_setting(a.key, a.value, note=a.note)
    print(f"已设置 set {a.key} = {s.display_value(a.key)}")
    return EXIT_OK


def audit(lg: Ledger, a: argparse.Namespace) -> int:
    rows = lg.audit(a.limit)
    if a.json:
        print_json(rows)
    else:
        print(table(("#", "时间 at", "操作人 actor", "操作 action", "详情 detail"),
                     [(r["id"], r["created_at"], r["actor"], r["action"],
                       json.dumps(r["detail"], ensure_ascii=False)[:100]) for r in rows]))
    return EXIT_OK
