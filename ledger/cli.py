"""``reelforge ledger --db FILE ...`` (mounted by ``ui/cli.py`` through :func:`register`) and
``python -m ledger --db FILE ...`` (through :func:`main`).

Exit codes: 0 done; 1 ``verify`` found a broken chain; 2 the request was refused (malformed
input, duplicate, conflict, unknown name: the reason is on stderr); 3 the ledger file itself
could not be read or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from core.errors import ReelForgeError
from ledger.money import format_fen, format_rate, micro_to_decimal, to_capital
from ledger.policy import CATEGORIES, SOURCE_KINDS, WORK_TYPES, PolicySettings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_BROKEN, EXIT_REFUSED, EXIT_STORAGE = 0, 1, 2, 3


# --- output helpers ---------------------------------------------------------------------------
def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _yuan(fen: int) -> str:
    return "¥" + format_fen(fen)


# --- the ledger object for a command ----------------------------------------------------------
def _db_path(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db).expanduser()
    from core.config import load_config

    return Path(load_config().ledger.db).expanduser()


def _open(args: argparse.Namespace) -> Any:
    from ledger.api import Ledger

    return Ledger(_db_path(args), archive_dir=args.archive)


# --- commands ---------------------------------------------------------------------------------
def _company_add(lg: Any, a: argparse.Namespace) -> int:
    c = lg.add_company(a.name, a.uscc, a.headcount, note=a.note)
    opc = "一人公司 OPC" if lg.settings().is_opc(c.headcount) else "非一人公司 not an OPC"
    print(f"已添加公司 company added: #{c.id} {c.name} {c.uscc}, {c.headcount} 人 staff ({opc})")
    return EXIT_OK


def _company_update(lg: Any, a: argparse.Namespace) -> int:
    c = lg.update_company(a.company, name=a.name, headcount=a.headcount, note=a.note)
    print(f"已更新公司 company updated: #{c.id} {c.name} {c.uscc}, {c.headcount} 人 staff")
    return EXIT_OK


def _company_list(lg: Any, a: argparse.Namespace) -> int:
    s = lg.settings()
    items = lg.companies()
    if a.json:
        _json([{"id": c.id, "name": c.name, "uscc": c.uscc, "headcount": c.headcount, "opc": s.is_opc(c.headcount)}
               for c in items])
    else:
        print(_table(("#", "名称 name", "统一社会信用代码 USCC", "人数 staff", "OPC"),
                     [(c.id, c.name, c.uscc, c.headcount, "是" if s.is_opc(c.headcount) else "否") for c in items]))
    return EXIT_OK


def _company_import(lg: Any, a: argparse.Namespace) -> int:
    print(f"已导入 imported {lg.import_companies_csv(a.file)} 家公司 companies")
    return EXIT_OK


def _vendor_add(lg: Any, a: argparse.Namespace) -> int:
    v = lg.add_vendor(a.name, a.uscc, related_party=a.related_party, aliases=a.alias or [], note=a.note)
    rp = "，关联方 related party" if v.related_party else ""
    print(f"已添加供应商 vendor added: #{v.id} {v.name} {v.uscc}{rp}")
    return EXIT_OK


def _vendor_update(lg: Any, a: argparse.Namespace) -> int:
    v = lg.update_vendor(a.vendor, name=a.name, related_party=a.related_party, aliases=a.alias, note=a.note)
    print(f"已更新供应商 vendor updated: #{v.id} {v.name} {v.uscc}, related party: {v.related_party}")
    return EXIT_OK


def _vendor_list(lg: Any, a: argparse.Namespace) -> int:
    items = lg.vendors()
    if a.json:
        _json([{"id": v.id, "name": v.name, "uscc": v.uscc, "related_party": v.related_party,
                "aliases": list(v.aliases)} for v in items])
    else:
        print(_table(("#", "名称 name", "统一社会信用代码 USCC", "关联方 related", "别名 aliases"),
                     [(v.id, v.name, v.uscc, "是" if v.related_party else "否", ", ".join(v.aliases)) for v in items]))
    return EXIT_OK


def _vendor_import(lg: Any, a: argparse.Namespace) -> int:
    print(f"已导入 imported {lg.import_vendors_csv(a.file)} 家供应商 vendors")
    return EXIT_OK


def _project_add(lg: Any, a: argparse.Namespace) -> int:
    p = lg.add_project(a.name, company=a.company, work_type=a.work_type, source_ip=a.source_ip,
                       source_kind=a.source_kind, yizhuang=a.yizhuang, note=a.note)
    print(f"已添加项目 project added: #{p.id} {p.name} ({p.work_type or '-'}, {p.source_kind or '-'}"
          f"{', 亦庄主题 Yizhuang theme' if p.yizhuang else ''})")
    return EXIT_OK


def _project_update(lg: Any, a: argparse.Namespace) -> int:
    p = lg.update_project(a.project, company=a.company, name=a.name, work_type=a.work_type, source_ip=a.source_ip,
                          source_kind=a.source_kind, yizhuang=a.yizhuang, note=a.note)
    print(f"已更新项目 project updated: #{p.id} {p.name} ({p.work_type or '-'}, {p.source_kind or '-'}, "
          f"Yizhuang: {p.yizhuang})")
    return EXIT_OK


def _project_list(lg: Any, a: argparse.Namespace) -> int:
    items = lg.projects(a.company)
    if a.json:
        _json([{"id": p.id, "name": p.name, "work_type": p.work_type, "source_ip": p.source_ip,
                "source_kind": p.source_kind, "yizhuang": p.yizhuang} for p in items])
    else:
        print(_table(("#", "名称 name", "作品类型 work type", "IP", "IP来源 source", "亦庄主题 Yizhuang"),
                     [(p.id, p.name, p.work_type, p.source_ip, p.source_kind, "是" if p.yizhuang else "否")
                      for p in items]))
    return EXIT_OK


def _price_add(lg: Any, a: argparse.Namespace) -> int:
    from ledger.money import parse_decimal
    from ledger.pricebook import PriceEntry
    from ledger.validate import parse_date

    e = lg.add_price(PriceEntry(
        model=a.model, unit=a.unit, price=parse_decimal(a.price, "price (单价)"), per=a.per,
        valid_from=parse_date(a.valid_from, "from (生效日期)", allow_future=True),
        valid_to=parse_date(a.valid_to, "to (失效日期)", allow_future=True) if a.valid_to else None,
        currency=a.currency, vendor=a.vendor, source=a.source, taken=a.taken, example=a.example, note=a.note))
    print(f"已添加价格 price added: #{e.id} {e.model}/{e.unit} ¥{e.price} per {e.per} from {e.valid_from}")
    return EXIT_OK


def _price_import(lg: Any, a: argparse.Namespace) -> int:
    added, skipped = lg.import_prices(a.file)
    print(f"已导入价格 prices imported: {added} added, {skipped} already present")
    return EXIT_OK


def _price_list(lg: Any, a: argparse.Namespace) -> int:
    items = lg.prices()
    if a.json:
        _json([{"id": e.id, "model": e.model, "unit": e.unit, "price": str(e.price), "per": e.per,
                "currency": e.currency, "valid_from": e.valid_from.isoformat(),
                "valid_to": e.valid_to.isoformat() if e.valid_to else None, "example": e.example,
                "source": e.source, "note": e.note} for e in items])
    else:
        print(_table(("#", "模型 model", "单位 unit", "单价 price", "每 per", "生效 from", "至 to", "示例 example"),
                     [(e.id, e.model, e.unit, f"¥{e.price}", e.per, e.valid_from, e.valid_to or "",
                       "示例 example" if e.example else "") for e in items]))
    return EXIT_OK


def _contract_add(lg: Any, a: argparse.Namespace) -> int:
    k = lg.add_contract(a.vendor, a.number, a.date, a.total, project=a.project, company=a.company, file=a.file,
                        note=a.note)
    print(f"已添加合同 contract added: #{k.id} {k.number} {_yuan(k.total_fen)}")
    return EXIT_OK


def _invoice_add(lg: Any, a: argparse.Namespace) -> int:
    inv = lg.add_invoice(a.vendor, a.number, a.date, a.ex_tax, a.tax, a.total, code=a.code or "",
                         invoice_type=a.type, tax_rate=a.tax_rate, category=a.category, project=a.project,
                         contract=a.contract, company=a.company, file=a.file, note=a.note)
    print(f"已添加发票 invoice added: #{inv.id} {inv.number} {inv.issue_date} 不含税 {_yuan(inv.ex_tax_fen)} "
          f"税 {_yuan(inv.tax_fen)} 合计 {_yuan(inv.total_fen)}")
    for f in inv.flags:
        print(f"注意 flagged: {f}", file=sys.stderr)
    return EXIT_OK


def _invoice_import(lg: Any, a: argparse.Namespace) -> int:
    print(f"已导入 imported {lg.import_invoices_csv(a.file)} 张发票 invoices")
    return EXIT_OK


def _invoice_list(lg: Any, a: argparse.Namespace) -> int:
    c = lg.company(a.company)
    views = lg.invoice_views(c.id, a.year)
    if a.json:
        _json([{"id": v.id, "number": v.number, "code": v.code, "date": v.issue_date.isoformat(),
                "vendor": v.vendor_name, "category": v.category, "project": v.project_name or None,
                "ex_tax_fen": v.ex_tax_fen, "tax_fen": v.tax_fen, "total_fen": v.total_fen, "paid_fen": v.paid_fen,
                "claims": v.claimed_in} for v in views])
        return EXIT_OK
    rows = [(v.id, v.issue_date, (v.code + " " if v.code else "") + v.number, v.vendor_name, v.category,
             v.project_name, format_fen(v.ex_tax_fen), format_fen(v.tax_fen), format_fen(v.total_fen),
             format_fen(v.paid_fen), ",".join(f"#{i}" for i in v.claimed_in)) for v in views]
    print(_table(("#", "开票日期", "发票号码", "供应商", "类别", "项目", "不含税", "税额", "价税合计", "已付", "申报"), rows))
    print(f"共 {len(rows)} 张 invoices; 价税合计 total {_yuan(sum(v.total_fen for v in views))}")
    return EXIT_OK


def _invoice_void(lg: Any, a: argparse.Namespace) -> int:
    inv = lg.void_invoice(a.number, a.reason, code=a.code or "")
    print(f"已作废（冲销行） invoice voided by a reversal row: #{inv.id} {inv.number}")
    return EXIT_OK


def _payment_add(lg: Any, a: argparse.Namespace) -> int:
    p = lg.add_payment(a.invoice, a.date, a.amount, a.bank_ref, code=a.code or "", file=a.file, note=a.note)
    print(f"已登记付款 payment recorded: #{p.id} {_yuan(p.amount_fen)} on {p.pay_date} ({p.bank_ref})")
    return EXIT_OK


def _payment_import(lg: Any, a: argparse.Namespace) -> int:
    print(f"已导入 imported {lg.import_payments_csv(a.file)} 笔付款 payments")
    return EXIT_OK


def _payment_list(lg: Any, a: argparse.Namespace) -> int:
    items = lg.payments(a.invoice, code=a.code or "")
    if a.json:
        _json([{"id": p.id, "invoice_id": p.invoice_id, "date": p.pay_date.isoformat(), "amount_fen": p.amount_fen,
                "bank_ref": p.bank_ref, "voided": p.voided} for p in items])
    else:
        print(_table(("#", "发票 invoice id", "付款日期", "付款金额", "银行流水号", "作废"),
                     [(p.id, p.invoice_id, p.pay_date, format_fen(p.amount_fen), p.bank_ref,
                       "是" if p.voided else "") for p in items]))
    return EXIT_OK


def _payment_void(lg: Any, a: argparse.Namespace) -> int:
    lg.void_payment(a.id, a.reason)
    print(f"已作废付款（冲销行） payment #{a.id} voided by a reversal row")
    return EXIT_OK


def _import_usage(lg: Any, a: argparse.Namespace) -> int:
    r = lg.import_usage(a.project_dir, project=a.project, company=a.company, allow_unpriced=a.allow_unpriced)
    print(f"用量导入 usage imported from {r.source} into project {r.project!r}: {r.imported} new, "
          f"{r.skipped} already in the ledger; estimated ¥{micro_to_decimal(r.estimated_micro)}")
    if r.prices_loaded:
        print(f"价目表为空，已载入默认价格 loaded {r.prices_loaded} default prices", file=sys.stderr)
    if r.unpriced:
        print(f"注意 flagged: {r.unpriced} events have no price: {'; '.join(r.missing_prices)}", file=sys.stderr)
    if r.example_priced:
        print(f"注意 flagged: {r.example_priced} events priced from EXAMPLE prices (edit the price book)",
              file=sys.stderr)
    return EXIT_OK


def _verify(lg: Any, a: argparse.Namespace) -> int:
    report = lg.verify(expect_head=a.expect_head or "")
    if a.json:
        _json({"ok": report.ok, "rows": report.rows, "files_checked": report.files_checked,
               "chain_head": report.head.hash, "seq": report.head.seq,
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


def _print_claim(result: Any) -> None:
    for line in result.calculation():
        print(line)
    status = {"draft": "草稿（未登记）draft, not recorded", "recorded": f"已登记 recorded as claim #{result.claim_id}",
              "changed_since_recorded": f"已登记 #{result.claim_id}，账簿此后有变动 ledger changed since",
              "withdrawn": "已撤回 withdrawn"}[result.status]
    print(f"状态 status: {status}")
    if result.lines:
        print(_table(("发票号码", "开票日期", "供应商", "项目", "计入基数", "比例", "备注"),
                     [(ln.invoice.number, ln.invoice.issue_date, ln.invoice.vendor_name, ln.invoice.project_name,
                       format_fen(ln.base_fen), format_rate(ln.rate), "; ".join(ln.flags)) for ln in result.lines]))
    for e in result.excluded:
        print(f"未计入 excluded {e.invoice.number}: {'; '.join(e.reasons)}")
    for note in result.notes:
        print(f"说明 note: {note}")


def _claim(lg: Any, a: argparse.Namespace) -> int:
    if a.measure == "best":
        plan = lg.plan_best(a.year, project=a.project, company=a.company)
        if a.record:
            if not plan.claims:
                raise ReelForgeError(f"nothing to claim for {a.year}: no eligible invoice")
            plan.claims = lg.record_plan(plan)
        if a.json:
            data = plan.to_json()
            data["chain_head"] = lg.chain_head().hash
            _json(data)
            return EXIT_OK
        for c in plan.claims:
            _print_claim(c)
            print()
        for label, fen in plan.options:
            print(f"方案 option: {label}: {_yuan(fen)}")
        for note in plan.notes:
            print(f"从优 best: {note}")
        print(f"建议申报合计 recommended total: {_yuan(plan.total_fen)}（{to_capital(plan.total_fen)}）")
        print(f"账簿链头 chain head: {lg.chain_head().hash}")
        return EXIT_OK
    measure = int(a.measure)
    if a.record:
        # the comparison is taken before recording: afterwards the project is held by this claim
        cmp_ = lg.compute_claim(measure, a.year, project=a.project, company=a.company).comparison
        result = lg.record_claim(measure, a.year, project=a.project, company=a.company)
        result.comparison = cmp_
    else:
        result = lg.compute_claim(measure, a.year, project=a.project, company=a.company)
    if a.json:
        data = result.to_json()
        data["chain_head"] = lg.chain_head().hash
        _json(data)
        return EXIT_OK
    _print_claim(result)
    if result.comparison:
        c = result.comparison
        print(f"比较 comparison: 措施{c['other_measure']} 为 {_yuan(c['other_claim_fen'])}；"
              f"建议 recommended: 措施{c['recommended_measure']}（从优不重复 the better one, never both）")
    print(f"账簿链头 chain head: {lg.chain_head().hash}")
    return EXIT_OK


def _claims(lg: Any, a: argparse.Namespace) -> int:
    items = lg.claims(a.year, company=a.company)
    if a.json:
        _json([{"id": c.id, "measure": c.measure, "year": c.year, "project": c.project_name or None,
                "claim_fen": c.claim_fen, "base_fen": c.base_fen, "active": c.active, "withdrawn_by": c.withdrawn_by,
                "lines": c.lines, "created_at": c.created_at} for c in items])
    else:
        print(_table(("#", "措施", "年度", "项目", "申报金额", "基数", "发票数", "状态", "登记时间"),
                     [(c.id, c.measure, c.year, c.project_name or "全公司", format_fen(c.claim_fen),
                       format_fen(c.base_fen), c.lines, "有效 active" if c.active else f"已撤回 (#{c.withdrawn_by})",
                       c.created_at) for c in items]))
    return EXIT_OK


def _withdraw(lg: Any, a: argparse.Namespace) -> int:
    lg.withdraw_claim(a.claim_id, a.reason)
    print(f"已撤回申报 claim #{a.claim_id} withdrawn (a reversal row); its invoices are free again")
    return EXIT_OK


def _reconcile(lg: Any, a: argparse.Namespace) -> int:
    rows = lg.reconcile(a.year, period=a.period, company=a.company, record=a.record)
    if a.json:
        _json([{"vendor": r.vendor_label, "period": r.period, "estimated_micro": r.estimated_micro,
                "unpriced_events": r.unpriced_events, "invoiced_fen": r.invoiced_fen,
                "difference_micro": r.difference_micro} for r in rows])
        return EXIT_OK
    print(_table(("供应商 vendor", "期间 period", "用量估算 estimated", "未定价 unpriced", "发票 invoiced", "差额 difference"),
                 [(r.vendor_label, r.period, f"¥{micro_to_decimal(r.estimated_micro)}", r.unpriced_events,
                   _yuan(r.invoiced_fen), f"¥{micro_to_decimal(r.difference_micro)}") for r in rows]))
    return EXIT_OK


def _export(lg: Any, a: argparse.Namespace) -> int:
    r = lg.export(a.year, a.out, measure=a.measure, project=a.project, company=a.company, claim_id=a.claim)
    for path in r.files:
        print(path)
    print(f"申报补贴合计 total claimed: {_yuan(r.total_claim_fen)}（{to_capital(r.total_claim_fen)}）; "
          f"{r.documents} archived document(s) in the evidence ZIP")
    print(f"账簿链头 chain head: {r.chain_head}")
    return EXIT_OK


def _settings_show(lg: Any, a: argparse.Namespace) -> int:
    s = lg.settings()
    if a.json:
        _json(s.to_dict())
    else:
        print(_table(("设置 key", "值 value", "说明"), [(k, v, zh) for k, v, zh, _ in s.describe()]))
    return EXIT_OK


def _settings_set(lg: Any, a: argparse.Namespace) -> int:
    s = lg.set_setting(a.key, a.value, note=a.note)
    print(f"已设置 set {a.key} = {s.display_value(a.key)}")
    return EXIT_OK


def _audit(lg: Any, a: argparse.Namespace) -> int:
    rows = lg.audit(a.limit)
    if a.json:
        _json(rows)
    else:
        print(_table(("#", "时间 at", "操作人 actor", "操作 action", "详情 detail"),
                     [(r["id"], r["created_at"], r["actor"], r["action"],
                       json.dumps(r["detail"], ensure_ascii=False)[:100]) for r in rows]))
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------
def _sub(parent: argparse.ArgumentParser, dest: str) -> Any:
    return parent.add_subparsers(dest=dest, required=True, metavar="COMMAND")


def _cmd(subs: Any, name: str, handler: Callable[[Any, argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
    p = subs.add_parser(name, help=help_, description=help_)
    p.set_defaults(ledger_handler=handler)
    return p


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``--db`` and every ledger subcommand to ``parser``."""
    parser.add_argument("--db", metavar="FILE", help="ledger file (default: [ledger] db in the config, "
                                                     "~/ReelForge/ledger.sqlite)")
    parser.add_argument("--archive", metavar="DIR", help="document archive folder (default: FILE's stem + "
                                                         "'-archive' beside it; never inside a web-served folder)")
    top = _sub(parser, "ledger_command")

    company = _sub(top.add_parser("company", help="companies 公司"), "ledger_sub")
    p = _cmd(company, "add", _company_add, "add a company 添加公司")
    p.add_argument("--name", required=True)
    p.add_argument("--uscc", required=True, help="统一社会信用代码 (18 characters, GB 32100-2015)")
    p.add_argument("--headcount", required=True, type=str, help="staff; fewer than 5 makes a one-person company")
    p.add_argument("--note", default="")
    p = _cmd(company, "update", _company_update, "change name, headcount or note (a new version row)")
    p.add_argument("--company", help="name or USCC (default: the only company)")
    p.add_argument("--name")
    p.add_argument("--headcount")
    p.add_argument("--note")
    p = _cmd(company, "list", _company_list, "list companies")
    p.add_argument("--json", action="store_true")
    p = _cmd(company, "import", _company_import, "import a CSV (name, uscc, headcount[, note])")
    p.add_argument("file")

    vendor = _sub(top.add_parser("vendor", help="vendors 供应商"), "ledger_sub")
    p = _cmd(vendor, "add", _vendor_add, "add a vendor 添加供应商")
    p.add_argument("--name", required=True)
    p.add_argument("--uscc", required=True)
    p.add_argument("--related-party", action="store_true", help="a related party (关联方) of the company")
    p.add_argument("--alias", action="append", help="a name used for it in usage records (repeatable)")
    p.add_argument("--note", default="")
    p = _cmd(vendor, "update", _vendor_update, "change a vendor (a new version row)")
    p.add_argument("vendor", help="name or USCC")
    p.add_argument("--name")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--related-party", dest="related_party", action="store_true", default=None)
    g.add_argument("--not-related-party", dest="related_party", action="store_false")
    p.add_argument("--alias", action="append")
    p.add_argument("--note")
    p = _cmd(vendor, "list", _vendor_list, "list vendors")
    p.add_argument("--json", action="store_true")
    p = _cmd(vendor, "import", _vendor_import, "import a CSV (name, uscc[, related_party, aliases, note])")
    p.add_argument("file")

    project = _sub(top.add_parser("project", help="projects 项目"), "ledger_sub")
    p = _cmd(project, "add", _project_add, "add a project 添加项目")
    p.add_argument("--name", required=True)
    p.add_argument("--company")
    p.add_argument("--work-type", default="", choices=[k for k in WORK_TYPES if k])
    p.add_argument("--source-ip", default="", help="title of the source IP (e.g. the web novel)")
    p.add_argument("--source-kind", default="", choices=[k for k in SOURCE_KINDS if k])
    p.add_argument("--yizhuang", action="store_true", help="a work on Yizhuang themes (亦庄主题)")
    p.add_argument("--note", default="")
    p = _cmd(project, "update", _project_update, "change a project (a new version row)")
    p.add_argument("project")
    p.add_argument("--company")
    p.add_argument("--name")
    p.add_argument("--work-type", choices=[k for k in WORK_TYPES if k])
    p.add_argument("--source-ip")
    p.add_argument("--source-kind", choices=[k for k in SOURCE_KINDS if k])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--yizhuang", dest="yizhuang", action="store_true", default=None)
    g.add_argument("--no-yizhuang", dest="yizhuang", action="store_false")
    p.add_argument("--note")
    p = _cmd(project, "list", _project_list, "list projects")
    p.add_argument("--company")
    p.add_argument("--json", action="store_true")

    price = _sub(top.add_parser("price", help="the price book 价目表"), "ledger_sub")
    p = _cmd(price, "add", _price_add, "add a price (a change is a new entry with a later --from)")
    p.add_argument("--model", required=True, help='model name, engine name or "*"')
    p.add_argument("--unit", required=True)
    p.add_argument("--price", required=True, help="yuan per --per units, e.g. 2.00")
    p.add_argument("--per", type=int, default=1, help="units the price is for (1000000 = per million tokens)")
    p.add_argument("--from", dest="valid_from", default="2000-01-01")
    p.add_argument("--to", dest="valid_to")
    p.add_argument("--currency", default="CNY")
    p.add_argument("--vendor", default="")
    p.add_argument("--source", default="")
    p.add_argument("--taken", default=date.today().isoformat())
    p.add_argument("--example", action="store_true", help="a placeholder to edit before use")
    p.add_argument("--note", default="")
    p = _cmd(price, "import", _price_import, "load a price-book TOML (default: the shipped defaults)")
    p.add_argument("file", nargs="?")
    p = _cmd(price, "list", _price_list, "list prices")
    p.add_argument("--json", action="store_true")

    contract = _sub(top.add_parser("contract", help="contracts 合同"), "ledger_sub")
    p = _cmd(contract, "add", _contract_add, "add a contract")
    p.add_argument("--vendor", required=True)
    p.add_argument("--number", required=True)
    p.add_argument("--date", required=True)
    p.add_argument("--total", required=True)
    p.add_argument("--project")
    p.add_argument("--company")
    p.add_argument("--file")
    p.add_argument("--note", default="")

    invoice = _sub(top.add_parser("invoice", help="invoices 发票"), "ledger_sub")
    p = _cmd(invoice, "add", _invoice_add, "add an invoice 添加发票 (amounts in yuan, e.g. 100.00)")
    p.add_argument("--vendor", required=True, help="vendor name or USCC")
    p.add_argument("--number", required=True, help="20-digit 数电票 number, or the 8-digit number with --code")
    p.add_argument("--code", help="10/12-digit invoice code of an older invoice")
    p.add_argument("--date", required=True, help="issue date YYYY-MM-DD")
    p.add_argument("--ex-tax", required=True, help="金额(不含税)")
    p.add_argument("--tax", required=True, help="税额")
    p.add_argument("--total", required=True, help="价税合计")
    p.add_argument("--tax-rate", help="e.g. 6%% (inferred when left out)")
    p.add_argument("--type", help="digital_special, digital_normal, special, normal, e_special, e_normal")
    p.add_argument("--category", default="ai_tech", help=f"one of {', '.join(CATEGORIES)} (default ai_tech)")
    p.add_argument("--project")
    p.add_argument("--contract", help="contract number")
    p.add_argument("--company")
    p.add_argument("--file", help="the invoice file to archive (PDF/OFD/XML)")
    p.add_argument("--note", default="")
    p = _cmd(invoice, "import", _invoice_import, "import a CSV of invoices (headers as in the add options "
                                                 "or the Chinese column names)")
    p.add_argument("file")
    p = _cmd(invoice, "list", _invoice_list, "list invoices")
    p.add_argument("--year", type=int)
    p.add_argument("--company")
    p.add_argument("--json", action="store_true")
    p = _cmd(invoice, "void", _invoice_void, "void an invoice entered by mistake (a reversal row)")
    p.add_argument("--number", required=True)
    p.add_argument("--code")
    p.add_argument("--reason", required=True)

    payment = _sub(top.add_parser("payment", help="payments 付款"), "ledger_sub")
    p = _cmd(payment, "add", _payment_add, "record a payment (proof of payment) for an invoice")
    p.add_argument("--invoice", required=True, help="invoice number")
    p.add_argument("--code")
    p.add_argument("--date", required=True)
    p.add_argument("--amount", required=True)
    p.add_argument("--bank-ref", required=True, help="银行流水号")
    p.add_argument("--file", help="bank receipt to archive")
    p.add_argument("--note", default="")
    p = _cmd(payment, "import", _payment_import, "import a CSV (invoice, date, amount, bank_ref[, code, file])")
    p.add_argument("file")
    p = _cmd(payment, "list", _payment_list, "list payments")
    p.add_argument("--invoice")
    p.add_argument("--code")
    p.add_argument("--json", action="store_true")
    p = _cmd(payment, "void", _payment_void, "void a payment (a reversal row)")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)

    p = _cmd(top, "import-usage", _import_usage, "import a project's usage.sqlite (idempotent)")
    p.add_argument("project_dir", metavar="PROJECT")
    p.add_argument("--project", help="ledger project name (default: the folder name)")
    p.add_argument("--company")
    p.add_argument("--allow-unpriced", action="store_true", help="import events without a price (no estimate)")

    p = _cmd(top, "verify", _verify, "recompute the hash chain; exit 1 and name the first broken link")
    p.add_argument("--expect-head", help="a chain head printed on an earlier export: it must still be in the chain")
    p.add_argument("--json", action="store_true")

    p = _cmd(top, "claim", _claim, "compute a claim (and with --record, record it)")
    p.add_argument("--measure", required=True, choices=["5", "6", "best"])
    p.add_argument("--year", required=True, type=int)
    p.add_argument("--project", help="one project (default: the whole company)")
    p.add_argument("--company")
    p.add_argument("--record", action="store_true", help="record it as an active claim")
    p.add_argument("--json", action="store_true")

    p = _cmd(top, "claims", _claims, "list recorded claims")
    p.add_argument("--year", type=int)
    p.add_argument("--company")
    p.add_argument("--json", action="store_true")

    p = _cmd(top, "withdraw", _withdraw, "withdraw a recorded claim (a reversal row)")
    p.add_argument("claim_id", type=int)
    p.add_argument("--reason", required=True)

    p = _cmd(top, "reconcile", _reconcile, "usage estimates against invoices per vendor and period")
    p.add_argument("--year", required=True, type=int)
    p.add_argument("--period", default="month", choices=["month", "quarter", "year"])
    p.add_argument("--company")
    p.add_argument("--record", action="store_true", help="store the result in the ledger")
    p.add_argument("--json", action="store_true")

    p = _cmd(top, "export", _export, "write the claim workbook, CSVs, PDF summary and evidence ZIP")
    p.add_argument("--year", required=True, type=int)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--measure", default="best", choices=["5", "6", "best"])
    p.add_argument("--project")
    p.add_argument("--company")
    p.add_argument("--claim", type=int, help="export this recorded claim as filed")

    settings = _sub(top.add_parser("settings", help="policy settings 规则设置"), "ledger_sub")
    p = _cmd(settings, "show", _settings_show, "show the settings every report states")
    p.add_argument("--json", action="store_true")
    p = _cmd(settings, "set", _settings_set, "change a setting (recorded in the ledger)")
    p.add_argument("key", choices=PolicySettings.keys())
    p.add_argument("value")
    p.add_argument("--note", default="")

    p = _cmd(top, "audit", _audit, "the audit log, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run a parsed ledger command; returns the exit code and writes failures to stderr."""
    handler = getattr(args, "ledger_handler", None)
    if handler is None:
        print("错误 error: no ledger command given (try --help)", file=sys.stderr)
        return EXIT_REFUSED
    try:
        lg = _open(args)
    except ReelForgeError as e:
        _fail(e)
        return EXIT_REFUSED
    except (sqlite3.Error, OSError) as e:
        print(f"错误 error: cannot open the ledger {str(_db_path(args))!r}: {e}", file=sys.stderr)
        return EXIT_STORAGE
    try:
        return int(handler(lg, args))
    except ReelForgeError as e:
        _fail(e)
        return EXIT_REFUSED
    except sqlite3.IntegrityError as e:
        print(f"错误 error: the ledger refused the change: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except (sqlite3.Error, OSError) as e:
        print(f"错误 error: ledger storage failed: {e}", file=sys.stderr)
        return EXIT_STORAGE
    finally:
        lg.close()


def _fail(e: ReelForgeError) -> None:
    print(f"错误 error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"提示 hint: {e.hint}", file=sys.stderr)


def register(subparsers: Any) -> None:
    """Add the ``ledger`` subcommand to the ``reelforge`` parser's subparsers. After
    ``args = parser.parse_args()``, ``args.func(args)`` runs it and returns the exit code."""
    p = subparsers.add_parser("ledger", help="AI-spend ledger and subsidy claims 费用台账与补贴申报",
                              description="Tamper-evident AI-spend ledger, measure 5/6 claims and exports. "
                                          "防篡改的AI费用台账、措施5/6补贴计算与申报材料导出。")
    configure_parser(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    from core.log import setup_logging

    setup_logging(os.environ.get("REELFORGE_LOG", "WARNING"))
    parser = argparse.ArgumentParser(prog="python -m ledger",
                                     description="ReelForge AI-spend ledger 费用台账 (same as `reelforge ledger`)")
    configure_parser(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already wrote the reason to stderr
        return int(e.code) if isinstance(e.code, int) else EXIT_REFUSED
    return run(args)


