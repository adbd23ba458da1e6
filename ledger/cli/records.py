"""Ledger CLI commands for master data and documents: companies, vendors, projects, prices,
contracts, invoices, payments and usage import."""

from __future__ import annotations

import argparse
import sys

from ledger import csvimport
from ledger.api import Ledger
from ledger.cli.output import EXIT_OK, print_json, table, yuan
from ledger.money import format_fen, micro_to_decimal


def company_add(lg: Ledger, a: argparse.Namespace) -> int:
    c = lg.master.add_company(a.name, a.uscc, a.headcount, note=a.note)
    opc = "一人公司 OPC" if lg.master.settings().is_opc(c.headcount) else "非一人公司 not an OPC"
    print(f"已添加公司 company added: #{c.id} {c.name} {c.uscc}, {c.headcount} 人 staff ({opc})")
    return EXIT_OK


def company_update(lg: Ledger, a: argparse.Namespace) -> int:
    c = lg.master.update_company(a.company, name=a.name, headcount=a.headcount, note=a.note, year=a.year,
                                 evidence_date=a.evidence_date, evidence=a.evidence or "")
    when = f"{a.year}年度 in {a.year}" if a.year else f"自 from {a.evidence_date or 'today'}"
    staff = f"; {a.headcount} 人 staff {when}" if a.headcount is not None else ""
    print(f"已更新公司 company updated: #{c.id} {c.name} {c.uscc}{staff}")
    return EXIT_OK


def company_list(lg: Ledger, a: argparse.Namespace) -> int:
    s = lg.master.settings()
    items = lg.master.companies()
    if a.json:
        print_json([{"id": c.id, "name": c.name, "uscc": c.uscc, "headcount": c.headcount, "opc": s.is_opc(c.headcount)}
               for c in items])
    else:
        print(table(("#", "名称 name", "统一社会信用代码 USCC", "人数 staff", "OPC"),
                     [(c.id, c.name, c.uscc, c.headcount, "是" if s.is_opc(c.headcount) else "否") for c in items]))
    return EXIT_OK


def company_import(lg: Ledger, a: argparse.Namespace) -> int:
    print(f"已导入 imported {csvimport.import_companies(lg, a.file)} 家公司 companies")
    return EXIT_OK


def vendor_add(lg: Ledger, a: argparse.Namespace) -> int:
    v = lg.master.add_vendor(a.name, a.uscc, related_party=a.related_party, aliases=a.alias or [], note=a.note)
    rp = "，关联方 related party" if v.related_party else ""
    print(f"已添加供应商 vendor added: #{v.id} {v.name} {v.uscc}{rp}")
    return EXIT_OK


def vendor_update(lg: Ledger, a: argparse.Namespace) -> int:
    v = lg.master.update_vendor(a.vendor, name=a.name, related_party=a.related_party, aliases=a.alias, note=a.note)
    print(f"已更新供应商 vendor updated: #{v.id} {v.name} {v.uscc}, related party: {v.related_party}")
    return EXIT_OK


def vendor_list(lg: Ledger, a: argparse.Namespace) -> int:
    items = lg.master.vendors()
    if a.json:
        print_json([{"id": v.id, "name": v.name, "uscc": v.uscc, "related_party": v.related_party,
                "aliases": list(v.aliases)} for v in items])
    else:
        print(table(("#", "名称 name", "统一社会信用代码 USCC", "关联方 related", "别名 aliases"),
                     [(v.id, v.name, v.uscc, "是" if v.related_party else "否", ", ".join(v.aliases)) for v in items]))
    return EXIT_OK


def vendor_import(lg: Ledger, a: argparse.Namespace) -> int:
    print(f"已导入 imported {csvimport.import_vendors(lg, a.file)} 家供应商 vendors")
    return EXIT_OK


def project_add(lg: Ledger, a: argparse.Namespace) -> int:
    p = lg.master.add_project(a.name, company=a.company, work_type=a.work_type, source_ip=a.source_ip,
                       source_kind=a.source_kind, yizhuang=a.yizhuang, note=a.note)
    print(f"已添加项目 project added: #{p.id} {p.name} ({p.work_type or '-'}, {p.source_kind or '-'}"
          f"{', 亦庄主题 Yizhuang theme' if p.yizhuang else ''})")
    return EXIT_OK


def project_update(lg: Ledger, a: argparse.Namespace) -> int:
    p = lg.master.update_project(a.project, company=a.company, name=a.name, work_type=a.work_type, source_ip=a.source_ip,
                          source_kind=a.source_kind, yizhuang=a.yizhuang, note=a.note)
    print(f"已更新项目 project updated: #{p.id} {p.name} ({p.work_type or '-'}, {p.source_kind or '-'}, "
          f"Yizhuang: {p.yizhuang})")
    return EXIT_OK


def project_list(lg: Ledger, a: argparse.Namespace) -> int:
    items = lg.master.projects(a.company)
    if a.json:
        print_json([{"id": p.id, "name": p.name, "work_type": p.work_type, "source_ip": p.source_ip,
                "source_kind": p.source_kind, "yizhuang": p.yizhuang} for p in items])
    else:
        print(table(("#", "名称 name", "作品类型 work type", "IP", "IP来源 source", "亦庄主题 Yizhuang"),
                     [(p.id, p.name, p.work_type, p.source_ip, p.source_kind, "是" if p.yizhuang else "否")
                      for p in items]))
    return EXIT_OK


def price_add(lg: Ledger, a: argparse.Namespace) -> int:
    from ledger.money import parse_decimal
    from ledger.pricebook import PriceEntry
    from ledger.validate import parse_date

    e = lg.prices.add(PriceEntry(
        model=a.model, unit=a.unit, price=parse_decimal(a.price, "price (单价)"), per=a.per,
        valid_from=parse_date(a.valid_from, "from (生效日期)", allow_future=True),
        valid_to=parse_date(a.valid_to, "to (失效日期)", allow_future=True) if a.valid_to else None,
        currency=a.currency, vendor=a.vendor, source=a.source, taken=a.taken, example=a.example, note=a.note))
    print(f"已添加价格 price added: #{e.id} {e.model}/{e.unit} ¥{e.price} per {e.per} from {e.valid_from}")
    return EXIT_OK


def price_import(lg: Ledger, a: argparse.Namespace) -> int:
    added, skipped = lg.prices.import_toml(a.file)
    print(f"已导入价格 prices imported: {added} added, {skipped} already present")
    return EXIT_OK


def price_list(lg: Ledger, a: argparse.Namespace) -> int:
    items = lg.prices.entries()
    if a.json:
        print_json([{"id": e.id, "model": e.model, "unit": e.unit, "price": str(e.price), "per": e.per,
                "currency": e.currency, "valid_from": e.valid_from.isoformat(),
                "valid_to": e.valid_to.isoformat() if e.valid_to else None, "example": e.example,
                "source": e.source, "note": e.note} for e in items])
    else:
        print(table(("#", "模型 model", "单位 unit", "单价 price", "每 per", "生效 from", "至 to", "示例 example"),
                     [(e.id, e.model, e.unit, f"¥{e.price}", e.per, e.valid_from, e.valid_to or "",
                       "示例 example" if e.example else "") for e in items]))
    return EXIT_OK


def contract_add(lg: Ledger, a: argparse.Namespace) -> int:
    k = lg.documents.add_contract(a.vendor, a.number, a.date, a.total, project=a.project, company=a.company, file=a.file,
                                  note=a.note, confirm=a.confirm)
    print(f"已添加合同 contract added: #{k.id} {k.number} {yuan(k.total_fen)}")
    return EXIT_OK


def invoice_add(lg: Ledger, a: argparse.Namespace) -> int:
    inv = lg.documents.add_invoice(a.vendor, a.number, a.date, a.ex_tax, a.tax, a.total, code=a.code or "",
                         invoice_type=a.type, tax_rate=a.tax_rate, category=a.category, project=a.project,
                         contract=a.contract, company=a.company, file=a.file, note=a.note,
                         confirm=a.confirm)
    print(f"已添加发票 invoice added: #{inv.id} {inv.number} {inv.issue_date} 不含税 {yuan(inv.ex_tax_fen)} "
          f"税 {yuan(inv.tax_fen)} 合计 {yuan(inv.total_fen)}")
    for f in inv.flags:
        print(f"注意 flagged: {f}", file=sys.stderr)
    return EXIT_OK


def invoice_import(lg: Ledger, a: argparse.Namespace) -> int:
    print(f"已导入 imported {csvimport.import_invoices(lg, a.file, confirm=a.confirm)} 张发票 invoices")
    return EXIT_OK


def invoice_list(lg: Ledger, a: argparse.Namespace) -> int:
    c = lg.master.company(a.company)
    views = lg.documents.invoice_views(c.id, a.year)
    if a.json:
        print_json([{"id": v.id, "number": v.number, "code": v.code, "date": v.issue_date.isoformat(),
                "vendor": v.vendor_name, "category": v.category, "project": v.project_name or None,
                "ex_tax_fen": v.ex_tax_fen, "tax_fen": v.tax_fen, "total_fen": v.total_fen, "paid_fen": v.paid_fen,
                "claims": v.claimed_in} for v in views])
        return EXIT_OK
    rows = [(v.id, v.issue_date, (v.code + " " if v.code else "") + v.number, v.vendor_name, v.category,
             v.project_name, format_fen(v.ex_tax_fen), format_fen(v.tax_fen), format_fen(v.total_fen),
             format_fen(v.paid_fen), ",".join(f"#{i}" for i in v.claimed_in)) for v in views]
    print(table(("#", "开票日期", "发票号码", "供应商", "类别", "项目", "不含税", "税额", "价税合计", "已付", "申报"), rows))
    print(f"共 {len(rows)} 张 invoices; 价税合计 total {yuan(sum(v.total_fen for v in views))}")
    return EXIT_OK


def invoice_void(lg: Ledger, a: argparse.Namespace) -> int:
    inv = lg.documents.void_invoice(a.number, a.reason, code=a.code or "")
    print(f"已作废（冲销行） invoice voided by a reversal row: #{inv.id} {inv.number}")
    return EXIT_OK


def payment_add(lg: Ledger, a: argparse.Namespace) -> int:
    p = lg.documents.add_payment(a.invoice, a.date, a.amount, a.bank_ref, code=a.code or "", file=a.file, note=a.note,
                                 confirm=a.confirm)
    print(f"已登记付款 payment recorded: #{p.id} {yuan(p.amount_fen)} on {p.pay_date} ({p.bank_ref})")
    return EXIT_OK


def payment_import(lg: Ledger, a: argparse.Namespace) -> int:
    print(f"已导入 imported {csvimport.import_payments(lg, a.file, confirm=a.confirm)} 笔付款 payments")
    return EXIT_OK


def payment_list(lg: Ledger, a: argparse.Namespace) -> int:
    items = lg.documents.payments(a.invoice, code=a.code or "")
    if a.json:
        print_json([{"id": p.id, "invoice_id": p.invoice_id, "date": p.pay_date.isoformat(), "amount_fen": p.amount_fen,
                "bank_ref": p.bank_ref, "voided": p.voided} for p in items])
    else:
        print(table(("#", "发票 invoice id", "付款日期", "付款金额", "银行流水号", "作废"),
                     [(p.id, p.invoice_id, p.pay_date, format_fen(p.amount_fen), p.bank_ref,
                       "是" if p.voided else "") for p in items]))
    return EXIT_OK


def payment_void(lg: Ledger, a: argparse.Namespace) -> int:
    lg.documents.void_payment(a.id, a.reason)
    print(f"已作废付款（冲销行） payment #{a.id} voided by a reversal row")
    return EXIT_OK


def import_usage(lg: Ledger, a: argparse.Namespace) -> int:
    r = lg.usage.import_project(a.project_dir, project=a.project, company=a.company, allow_unpriced=a.allow_unpriced)
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


def invoice_red(lg: Ledger, a: argparse.Namespace) -> int:
    inv = lg.documents.add_red_invoice(a.blue, a.number, a.date, a.ex_tax, a.tax, a.total, reason=a.reason,
                                       blue_code=a.blue_code or "", code=a.code or "", file=a.file, note=a.note,
                                       confirm=a.confirm)
    print(f"已登记红字发票 red-letter invoice recorded: #{inv.id} {inv.number} 合计 {yuan(inv.total_fen)}, "
          f"冲减 cancels part of {a.blue}")
    return EXIT_OK


def payment_refund(lg: Ledger, a: argparse.Namespace) -> int:
    p = lg.documents.add_refund(a.id, a.date, a.amount, a.bank_ref, reason=a.reason, file=a.file, note=a.note,
                                confirm=a.confirm)
    print(f"已登记退款 refund recorded: #{p.id} {yuan(p.amount_fen)} of payment #{a.id} ({p.bank_ref})")
    return EXIT_OK


def project_release(lg: Ledger, a: argparse.Namespace) -> int:
    r = lg.master.add_release(a.project, platform=a.platform, release_date=a.date, licence_no=a.licence,
                              company=a.company, note=a.note)
    print(f"已登记上线播出 release recorded: {a.project} on {r.platform}, {r.release_date}, {r.licence_no}")
    return EXIT_OK
