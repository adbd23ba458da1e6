"""Claim-ready exports: the XLSX workbook (费用明细表, 发票清单, 付款清单, 用量明细, 用量对账, 汇总),
a UTF-8 (with BOM) CSV of each sheet, a PDF summary, and an evidence ZIP holding every archived
document with a manifest of sha256 digests.

All amounts are computed from integer fen (or micro-yuan for usage estimates) and written as
exact decimals; totals are sums of those integers, never of floats. The chain head printed on
every output is the head *before* the export's own audit entry is appended.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.claims import ClaimResult, InvoiceView
from ledger.errors import ChainError, LedgerError
from ledger.money import (
    MICRO_PER_YUAN,
    fen_to_decimal,
    format_fen,
    format_rate,
    micro_to_fen,
    to_capital,
)
from ledger.policy import CATEGORIES

if TYPE_CHECKING:
    from ledger.api import Ledger

log = logging.getLogger(__name__)

YUAN_FORMAT = '"¥"#,##0.00'
MEASURE_LABEL = {5: "措施5", 6: "措施6"}

DETAIL_HEADERS = ("序号", "费用类别", "项目/用途", "供应商名称", "供应商统一社会信用代码", "合同编号", "发票类型",
                  "发票代码", "发票号码", "开票日期", "金额(不含税)", "税率", "税额", "价税合计", "付款日期",
                  "付款金额", "银行流水号", "本次申报金额", "适用措施", "备注")


@dataclass(frozen=True, slots=True)
class Fen:
    """A money cell in fen."""

    value: int


@dataclass(frozen=True, slots=True)
class Micro:
    """A money cell in micro-yuan (usage estimates)."""

    value: int


@dataclass(slots=True)
class Sheet:
    name: str
    headers: tuple[str, ...]
    rows: list[list[Any]] = field(default_factory=list)
    total: list[Any] | None = None
    footer: list[list[Any]] = field(default_factory=list)
    widths: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class ExportResult:
    out_dir: Path
    year: int
    chain_head: str
    exported_at: str
    claims: list[ClaimResult]
    xlsx: Path
    csvs: list[Path]
    pdf: Path
    evidence_zip: Path
    documents: int
    total_claim_fen: int

    @property
    def files(self) -> list[Path]:
        return [self.xlsx, *self.csvs, self.pdf, self.evidence_zip]


def _rate_text(tax_rate: str, ex_tax_fen: int, tax_fen: int) -> str:
    if not tax_rate:
        if ex_tax_fen:
            return f"≈{format_rate((Decimal(tax_fen) / Decimal(ex_tax_fen)).quantize(Decimal('0.0001')))}"
        return ""
    if tax_rate in ("免税", "不征税"):
        return tax_rate
    return format_rate(Decimal(tax_rate))


def _invoice_cells(v: InvoiceView) -> list[Any]:
    return [CATEGORIES.get(v.category, v.category).split(" ")[0], v.project_name or "公司通用 company-wide",
            v.vendor_name, v.vendor_uscc, v.contract_number, v.invoice_type, v.code, v.number,
            v.issue_date.isoformat(), Fen(v.ex_tax_fen), _rate_text(v.tax_rate, v.ex_tax_fen, v.tax_fen),
            Fen(v.tax_fen), Fen(v.total_fen)]


def build_sheets(ledger: Ledger, year: int, claims: list[ClaimResult], chain_head: str,
                 exported_at: str) -> list[Sheet]:
    company = claims[0].company
    footer = [["账簿链头 chain head", chain_head], ["导出时间 exported at", exported_at]]

    # 费用明细表: one row per claimed invoice
    detail = Sheet("费用明细表", DETAIL_HEADERS, footer=footer,
                   widths={2: 16, 3: 18, 4: 22, 5: 22, 6: 14, 7: 22, 8: 14, 9: 24, 10: 12, 15: 12, 17: 24, 20: 60})
    sums = {"ex": 0, "tax": 0, "total": 0, "paid": 0, "base": 0}
    n = 0
    for c in claims:
        tag = f"{MEASURE_LABEL[c.measure]}" + (f" 申报#{c.claim_id}" if c.claim_id else " 草稿 draft")
        for ln in c.lines:
            v = ln.invoice
            n += 1
            cells = _invoice_cells(v)
            notes = [f"比例 {format_rate(ln.rate)}", *ln.flags]
            detail.rows.append([n, *cells,
                                "；".join(p.pay_date.isoformat() for p in v.payments), Fen(v.paid_fen),
                                "；".join(p.bank_ref for p in v.payments), Fen(ln.base_fen), tag, "；".join(notes)])
            sums["ex"] += v.ex_tax_fen
            sums["tax"] += v.tax_fen
            sums["total"] += v.total_fen
            sums["paid"] += v.paid_fen
            sums["base"] += ln.base_fen
    detail.total = ["合计", "", "", "", "", "", "", "", "", "", Fen(sums["ex"]), "", Fen(sums["tax"]),
                    Fen(sums["total"]), "", Fen(sums["paid"]), "", Fen(sums["base"]), "",
                    f"本次申报金额合计（大写）：{to_capital(sums['base'])}"]

    # 发票清单: every invoice of the year in scope, with whether and why it counts
    status: dict[int, tuple[str, str]] = {}
    views: dict[int, InvoiceView] = {}
    for c in claims:
        tag = f"{MEASURE_LABEL[c.measure]}" + (f" 申报#{c.claim_id}" if c.claim_id else " 草稿 draft")
        for ln in c.lines:
            views[ln.invoice.id] = ln.invoice
            status[ln.invoice.id] = ("计入 counted", tag)
        for e in c.excluded:
            views.setdefault(e.invoice.id, e.invoice)
            if e.invoice.id not in status or status[e.invoice.id][0].startswith("不"):
                prev = status.get(e.invoice.id, ("", ""))[1]
                reason = f"{MEASURE_LABEL[c.measure]}：" + "；".join(e.reasons)
                status[e.invoice.id] = ("不计入 not counted", f"{prev}；{reason}" if prev else reason)
        for v in c.not_applicable:
            views.setdefault(v.id, v)
    inv_sheet = Sheet("发票清单", ("序号", "费用类别", "项目/用途", "供应商名称", "供应商统一社会信用代码", "合同编号",
                                   "发票类型", "发票代码", "发票号码", "开票日期", "金额(不含税)", "税率", "税额",
                                   "价税合计", "已付金额", "是否计入", "适用措施", "备注"),
                      footer=footer, widths={2: 16, 3: 18, 4: 22, 5: 22, 7: 22, 9: 24, 18: 80})
    isums = {"ex": 0, "tax": 0, "total": 0, "paid": 0}
    for n, v in enumerate(sorted(views.values(), key=lambda x: (x.issue_date, x.id)), 1):
        counted, note = status.get(v.id, ("不适用 not applicable", "费用类别不属于所导出的措施 category outside the "
                                                                   "exported measure(s)"))
        measure = note if counted.startswith("计入") else ""
        inv_sheet.rows.append([n, *_invoice_cells(v), Fen(v.paid_fen), counted, measure,
                               "" if counted.startswith("计入") else note])
        isums["ex"] += v.ex_tax_fen
        isums["tax"] += v.tax_fen
        isums["total"] += v.total_fen
        isums["paid"] += v.paid_fen
    inv_sheet.total = ["合计", "", "", "", "", "", "", "", "", "", Fen(isums["ex"]), "", Fen(isums["tax"]),
                       Fen(isums["total"]), Fen(isums["paid"]), "", "",
                       f"价税合计（大写）：{to_capital(isums['total'])}"]

    # 付款清单
    pay_sheet = Sheet("付款清单", ("序号", "供应商名称", "发票代码", "发票号码", "开票日期", "价税合计", "付款日期",
                                   "付款金额", "银行流水号", "付款凭证", "备注"),
                      footer=footer, widths={2: 22, 4: 24, 9: 24, 10: 20, 11: 30})
    psum = 0
    n = 0
    for v in sorted(views.values(), key=lambda x: (x.issue_date, x.id)):
        for p in v.payments:
            n += 1
            pay_sheet.rows.append([n, v.vendor_name, v.code, v.number, v.issue_date.isoformat(), Fen(v.total_fen),
                                   p.pay_date.isoformat(), Fen(p.amount_fen), p.bank_ref,
                                   "已存档 archived" if p.has_file else "无 none", ""])
            psum += p.amount_fen
    pay_sheet.total = ["合计", "", "", "", "", "", "", Fen(psum), "", "", f"付款金额合计（大写）：{to_capital(psum)}"]

    # 用量明细 (grouped per day; every event is in the evidence ZIP)
    project = claims[0].project if len(claims) == 1 else None
    usage = Sheet("用量明细", ("序号", "日期", "项目", "环节", "引擎", "模型", "设备", "供应商", "计量单位", "数量",
                               "单价(元)", "计价单位数", "事件数", "估算金额", "备注"),
                  footer=footer, widths={3: 16, 5: 14, 6: 18, 15: 40})
    umicro = 0
    uevents = 0
    for n, g in enumerate(ledger.usage_summary(year, company=company.id,
                                               project=project.id if project else None), 1):
        notes = []
        if g["price_example"]:
            notes.append("示例价格，需核对 example price")
        if g["unpriced"]:
            notes.append(f"{g['unpriced']} 条无价格 unpriced")
        usage.rows.append([n, g["day"], g["project"], g["stage"], g["engine"], g["model"], g["device"], g["vendor"],
                           g["unit"], str(g["quantity"]), g["unit_price"] or "", g["price_per"] or "", g["events"],
                           Micro(g["amount_micro"]), "；".join(notes)])
        umicro += g["amount_micro"]
        uevents += g["events"]
    usage.total = ["合计", "", "", "", "", "", "", "", "", "", "", "", uevents, Micro(umicro),
                   f"估算金额合计（大写，四舍五入到分）：{to_capital(micro_to_fen(umicro))}"]

    # 用量对账
    recon = Sheet("用量对账", ("序号", "供应商", "期间", "用量估算金额", "未定价事件数", "发票金额", "差额(发票-估算)", "备注"),
                  footer=footer, widths={2: 24, 3: 10, 8: 40})
    basis = claims[0].settings.basis
    for n, r in enumerate(ledger.reconcile(year, company=company.id), 1):
        recon.rows.append([n, r.vendor_label, r.period, Micro(r.estimated_micro), r.unpriced_events,
                           Fen(r.invoiced_fen), Micro(r.difference_micro),
                           f"发票口径 {'不含税' if basis == 'ex_tax' else '价税合计'}"])

    # 汇总
    summary = Sheet("汇总", ("项目", "内容"), widths={1: 34, 2: 110})
    s = claims[0].settings
    summary.rows += [
        ["企业名称 company", company.name],
        ["统一社会信用代码 USCC", company.uscc],
        ["员工人数 staff", f"{company.headcount}（{'一人公司 OPC' if s.is_opc(company.headcount) else '非一人公司 not OPC'}）"],
        ["申报年度 period", f"{year}-01-01 至 {year}-12-31（开票日期 invoice dates）"],
        ["申报基数口径 basis", "不含税金额 ex-tax" if s.basis == "ex_tax" else "价税合计 tax-inclusive"],
        ["导出时间 exported at", exported_at],
        ["账簿链头 chain head", chain_head],
    ]
    total_claim = 0
    for c in claims:
        state = {"draft": "草稿（未登记）draft, not recorded", "recorded": f"已登记申报 #{c.claim_id}",
                 "changed_since_recorded": f"已登记申报 #{c.claim_id}（账簿此后有变动 ledger changed since）",
                 "withdrawn": f"已撤回 withdrawn #{c.claim_id}"}[c.status]
        summary.rows.append([f"{MEASURE_LABEL[c.measure]} 状态 status", state])
        for i, line in enumerate(c.calculation()):
            summary.rows.append([f"{MEASURE_LABEL[c.measure]} 计算 {i + 1}", line])
        summary.rows.append([f"{MEASURE_LABEL[c.measure]} 本次申报补贴金额", Fen(c.claim_fen)])
        summary.rows.append([f"{MEASURE_LABEL[c.measure]} 金额大写", to_capital(c.claim_fen)])
        for note in c.notes:
            summary.rows.append([f"{MEASURE_LABEL[c.measure]} 说明 note", note])
        if c.comparison:
            cmp_ = c.comparison
            summary.rows.append([f"{MEASURE_LABEL[c.measure]} 比较 comparison",
                                 f"同一范围按措施{cmp_['other_measure']}为 ¥{format_fen(cmp_['other_claim_fen'])}；"
                                 f"建议 recommended: 措施{cmp_['recommended_measure']}"])
        total_claim += c.claim_fen
    summary.total = ["合计 本次申报补贴金额", Fen(total_claim)]
    summary.footer = [["合计（大写）", to_capital(total_claim)], [], ["设置 settings", "值 value / 说明 description"]]
    for key, value, zh, en in s.describe():
        summary.footer.append([key, f"{value} — {zh} / {en}"])
    return [detail, inv_sheet, pay_sheet, usage, recon, summary]


def _cell_text(value: Any) -> str:
    if isinstance(value, Fen):
        return format_fen(value.value, grouping=False)
    if isinstance(value, Micro):
        return format(Decimal(value.value) / MICRO_PER_YUAN, "f")
    return "" if value is None else str(value)


def _cell_value(value: Any) -> Any:
    if isinstance(value, Fen):
        return fen_to_decimal(value.value)
    if isinstance(value, Micro):
        return Decimal(value.value) / MICRO_PER_YUAN
    return value


def write_xlsx(sheets: list[Sheet], path: Path) -> None:
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font, PatternFill
        from openpyxl.utils import get_column_letter
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("openpyxl", "office") from e
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for sheet in sheets:
        ws = wb.create_sheet(sheet.name)
        ws.append(list(sheet.headers))
        for cell in ws[1]:
            cell.font = bold
            cell.fill = head_fill
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.freeze_panes = "A2"

        def put(values: list[Any], *, strong: bool = False, ws: Any = ws) -> None:
            ws.append([_cell_value(v) for v in values])
            row = ws.max_row
            for col, v in enumerate(values, 1):
                cell = ws.cell(row=row, column=col)
                if isinstance(v, Fen | Micro):
                    cell.number_format = YUAN_FORMAT
                elif isinstance(v, str) and len(v) > 8 and v.isdigit():
                    cell.number_format = "@"  # invoice numbers and codes stay text
                if strong:
                    cell.font = bold

        for r in sheet.rows:
            put(r)
        if sheet.total is not None:
            put(sheet.total, strong=True)
        if sheet.footer:
            ws.append([])
            for r in sheet.footer:
                put(r)
        for col in range(1, len(sheet.headers) + 1):
            ws.column_dimensions[get_column_letter(col)].width = sheet.widths.get(col, 12)
    wb.properties.creator = "ReelForge ledger"
    wb.save(path)


def write_csv(sheet: Sheet, path: Path) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(sheet.headers)
        for r in sheet.rows:
            w.writerow([_cell_text(v) for v in r])
        if sheet.total is not None:
            w.writerow([_cell_text(v) for v in sheet.total])
        for r in sheet.footer:
            w.writerow([_cell_text(v) for v in r])


def write_pdf(path: Path, *, claims: list[ClaimResult], year: int, chain_head: str, exported_at: str) -> None:
    try:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.lib.units import mm
        from reportlab.pdfgen import canvas as rl_canvas
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("reportlab", "office") from e
    from xml.sax.saxutils import escape

    from ledger.fonts import FONT_NAME, register_cjk_font

    register_cjk_font()
    company = claims[0].company
    s = claims[0].settings

    class NumberedCanvas(rl_canvas.Canvas):
        """Writes '第 x 页 / 共 y 页' once the page count is known."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._states: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._states.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._states)
            for state in self._states:
                self.__dict__.update(state)
                self.setFont(FONT_NAME, 7.5)
                self.drawString(15 * mm, 10 * mm, f"{company.name}  {year}年度  链头 chain head {chain_head}")
                self.drawRightString(195 * mm, 10 * mm, f"第 {self._pageNumber} 页 / 共 {total} 页")
                super().showPage()
            super().save()

    body = ParagraphStyle("body", fontName=FONT_NAME, fontSize=9.5, leading=14, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=11)
    title = ParagraphStyle("title", parent=body, fontSize=16, leading=22, spaceAfter=6)
    h2 = ParagraphStyle("h2", parent=body, fontSize=12, leading=18, spaceBefore=8, spaceAfter=4)

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    def table(rows: list[list[str]], widths: list[float]) -> Table:
        t = Table([[p(c, small) for c in r] for r in rows], colWidths=widths, repeatRows=0)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#EEF3FA"))]))
        return t

    story: list[Any] = [
        p(f"补贴申报汇总 Subsidy claim summary — {year}年度", title),
        table([
            ["企业 company", f"{company.name}（统一社会信用代码 USCC {company.uscc}）"],
            ["员工人数 staff", f"{company.headcount}（{'一人公司 OPC' if s.is_opc(company.headcount) else '非一人公司 not an OPC'}）"],
            ["期间 period", f"{year}-01-01 — {year}-12-31（按开票日期 by invoice date）"],
            ["措施 measure(s)", "；".join(f"{MEASURE_LABEL[c.measure]}" for c in claims)],
            ["导出时间 exported at", exported_at],
            ["账簿链头 chain head", chain_head],
        ], [40 * mm, 140 * mm]),
    ]
    total = 0
    for c in claims:
        status = {"draft": "草稿，未登记 draft (not recorded)", "recorded": f"已登记申报 recorded claim #{c.claim_id}",
                  "changed_since_recorded": f"已登记申报 #{c.claim_id}，账簿此后有变动 ledger changed since",
                  "withdrawn": f"已撤回 withdrawn #{c.claim_id}"}[c.status]
        story.append(p(f"{MEASURE_LABEL[c.measure]} — {status}", h2))
        story.append(table([[f"{i + 1}", line] for i, line in enumerate(c.calculation())], [10 * mm, 170 * mm]))
        for note in c.notes:
            story.append(p("说明 note: " + note, small))
        if c.comparison:
            story.append(p(f"比较 comparison: 同一范围按措施{c.comparison['other_measure']}为 "
                           f"¥{format_fen(c.comparison['other_claim_fen'])}，建议 recommended 措施"
                           f"{c.comparison['recommended_measure']}（从优不重复 the better one, never both）", small))
        if c.excluded:
            rows = [["发票号码 invoice", "未计入原因 why not counted"]]
            rows += [[e.invoice.number, "；".join(e.reasons)] for e in c.excluded[:60]]
            if len(c.excluded) > 60:
                rows.append(["…", f"另有 {len(c.excluded) - 60} 张，见发票清单 see the 发票清单 sheet"])
            story.append(Spacer(1, 4))
            story.append(table(rows, [50 * mm, 130 * mm]))
        total += c.claim_fen
    story.append(p("合计 total", h2))
    story.append(table([["本次申报补贴金额合计", f"¥{format_fen(total)}"], ["大写", to_capital(total)]],
                       [50 * mm, 130 * mm]))
    story.append(p("设置 settings（本报告所用规则 the rules this report used）", h2))
    story.append(table([[k, f"{v} — {zh} / {en}"] for k, v, zh, en in s.describe()], [40 * mm, 140 * mm]))
    story.append(Spacer(1, 6))
    story.append(p("本汇总由 ReelForge 账簿生成；每张发票、付款凭证的存档文件及其 sha256 见证据包 evidence ZIP。"
                   "Generated by the ReelForge ledger; archived documents and their sha256 are in the evidence ZIP.",
                   small))
    doc = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title=f"{company.name} {year} 补贴申报汇总",
                            initialFontName=FONT_NAME,  # so every font in the file is the embedded one
                            author="ReelForge ledger", subject=f"chain head {chain_head}")
    doc.build(story, canvasmaker=NumberedCanvas)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return keep.strip("._") or "file"


def write_evidence_zip(ledger: Ledger, path: Path, *, claims: list[ClaimResult], year: int, chain_head: str,
                       exported_at: str, outputs: list[Path]) -> int:
    """Every archived document behind the exported invoices, the exports themselves, the full
    usage event list, and a manifest (CSV + ``SHA256SUMS``) of every file's sha256."""
    conn = ledger.store.conn
    views: dict[int, InvoiceView] = {}
    for c in claims:
        for ln in c.lines:
            views[ln.invoice.id] = ln.invoice
        for e in c.excluded:
            views.setdefault(e.invoice.id, e.invoice)
        for v in c.not_applicable:
            views.setdefault(v.id, v)
    wanted: list[tuple[str, int, str]] = []  # (kind, file id, reference)
    for v in sorted(views.values(), key=lambda x: (x.issue_date, x.id)):
        row = conn.execute("SELECT file_id, contract_id FROM invoices WHERE id = ?", (v.id,)).fetchone()
        if row[0] is not None:
            wanted.append(("invoices", int(row[0]), f"{v.code}-{v.number}" if v.code else v.number))
        if row[1] is not None:
            k = conn.execute("SELECT number, file_id FROM contracts WHERE id = ?", (row[1],)).fetchone()
            if k[1] is not None:
                wanted.append(("contracts", int(k[1]), str(k[0])))
        for p in conn.execute("SELECT id, bank_ref, file_id FROM payments WHERE invoice_id = ? AND reverses IS NULL "
                              "AND file_id IS NOT NULL", (v.id,)):
            wanted.append(("payments", int(p[2]), f"{v.number}_{p[1]}"))
    manifest: list[tuple[str, str, int, str, str]] = []  # path, sha256, size, kind, reference
    seen: set[tuple[str, int]] = set()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for kind, fid, ref in wanted:
            if (kind, fid) in seen:
                continue
            seen.add((kind, fid))
            f = ledger.file(fid)
            src = ledger.archive_dir / f.stored_name
            if not src.is_file():
                raise ChainError(f"archived file {f.original_name!r} (sha256 {f.sha256[:16]}…) is missing from "
                                 f"{str(ledger.archive_dir)!r}", hint="run `ledger verify`; restore the archive from backup")
            data = src.read_bytes()
            digest = _sha256_bytes(data)
            if digest != f.sha256:
                raise ChainError(f"archived file {f.original_name!r} was altered: sha256 {digest[:16]}… but the "
                                 f"ledger recorded {f.sha256[:16]}…", hint="run `ledger verify`")
            name = f"documents/{kind}/{_safe(ref)}_{f.sha256[:8]}{Path(f.stored_name).suffix}"
            zf.writestr(name, data)
            manifest.append((name, digest, len(data), kind, f"{ref} ({f.original_name})"))
        for out in outputs:
            data = out.read_bytes()
            name = f"claim/{out.name}"
            zf.writestr(name, data)
            manifest.append((name, _sha256_bytes(data), len(data), "export", out.name))
        buf = io.StringIO()
        csv.writer(buf).writerows(ledger.usage_events_rows(year, company=claims[0].company.id))  # None -> ""
        data = ("\ufeff" + buf.getvalue()).encode("utf-8")
        name = f"usage/usage_events_{year}.csv"
        zf.writestr(name, data)
        manifest.append((name, _sha256_bytes(data), len(data), "usage", "every usage event of the year"))
        mbuf = io.StringIO()
        mw = csv.writer(mbuf)
        mw.writerow(["path", "sha256", "size", "kind", "reference"])
        mw.writerows(manifest)
        mw.writerow([])
        mw.writerow(["chain_head", chain_head])
        mw.writerow(["exported_at", exported_at])
        zf.writestr("manifest.csv", ("\ufeff" + mbuf.getvalue()).encode("utf-8"))
        zf.writestr("SHA256SUMS", "".join(f"{sha}  {name}\n" for name, sha, *_ in manifest))
        zf.writestr("README.txt", (
            f"ReelForge 证据包 evidence package — {claims[0].company.name} {year}\n"
            f"账簿链头 chain head: {chain_head}\n导出时间 exported at: {exported_at}\n"
            "校验 check: unzip, then `sha256sum -c SHA256SUMS`; every document's sha256 is also in the ledger.\n"
            "核对链头 compare the head with `reelforge ledger --db FILE verify --expect-head HEAD`.\n"))
    return sum(1 for m in manifest if m[3] in ("invoices", "payments", "contracts"))


def export_claim_package(ledger: Ledger, year: int, out_dir: Path, *, measure: str = "best",
                         project: str | int | None = None, company: str | int | None = None,
                         claim_id: int | None = None) -> ExportResult:
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise LedgerError(f"export folder {str(out_dir)!r} is a file", hint="give a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    with ledger.store.read():
        head = ledger.chain_head().hash
        claims = ledger.claims_for_export(year, measure=measure, project=project, company=company,
                                          claim_id=claim_id)
        for c in claims:
            c.chain_head = head
        sheets = build_sheets(ledger, year, claims, head, exported_at)
    xlsx = out_dir / f"{year}_claim.xlsx"
    write_xlsx(sheets, xlsx)
    csvs = []
    for sheet in sheets:
        path = out_dir / f"{year}_{sheet.name}.csv"
        write_csv(sheet, path)
        csvs.append(path)
    pdf = out_dir / f"{year}_summary.pdf"
    write_pdf(pdf, claims=claims, year=year, chain_head=head, exported_at=exported_at)
    evidence = out_dir / f"{year}_evidence.zip"
    with ledger.store.read():
        documents = write_evidence_zip(ledger, evidence, claims=claims, year=year, chain_head=head,
                                       exported_at=exported_at, outputs=[xlsx, *csvs, pdf])
    result = ExportResult(out_dir=out_dir, year=year, chain_head=head, exported_at=exported_at, claims=claims,
                          xlsx=xlsx, csvs=csvs, pdf=pdf, evidence_zip=evidence, documents=documents,
                          total_claim_fen=sum(c.claim_fen for c in claims))
    with ledger.store.write() as w:
        w.audit("export", {"year": year, "measure": measure, "chain_head": head, "exported_at": exported_at,
                           "claims": [{"measure": c.measure, "claim_id": c.claim_id, "claim_fen": c.claim_fen}
                                      for c in claims],
                           "files": {p.name: _sha256_bytes(p.read_bytes()) for p in result.files}})
    return result
