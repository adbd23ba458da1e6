"""The sheets of a claim package (费用明细表, 发票清单, 付款清单, 用量明细, 用量对账, 汇总) as plain
data: money cells hold integer fen (:class:`Fen`) or micro-yuan (:class:`Micro`), never floats;
totals are sums of those integers. The writers turn them into XLSX and CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.checkpoints import Checkpoint, local_time
from ledger.claims import ClaimResult, InvoiceView, RedLetterView
from ledger.money import format_fen, format_rate, micro_to_fen, to_capital
from ledger.policy import CATEGORIES

if TYPE_CHECKING:
    from ledger.api import Ledger

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



def _rate_text(tax_rate: str, ex_tax_fen: int, tax_fen: int) -> str:
    if not tax_rate:
        if ex_tax_fen:
            return f"≈{format_rate((Decimal(tax_fen) / Decimal(ex_tax_fen)).quantize(Decimal('0.0001')))}"
        return ""
    if tax_rate in ("免税", "不征税"):
        return tax_rate
    return format_rate(Decimal(tax_rate))


def _invoice_cells(v: InvoiceView, *, net: bool = False) -> list[Any]:
    """The invoice as printed, or (``net``) after its red-letter invoices."""
    ex, tax, total = (v.net_ex_tax_fen, v.net_tax_fen, v.net_total_fen) if net else (v.ex_tax_fen, v.tax_fen,
                                                                                      v.total_fen)
    return [CATEGORIES.get(v.category, v.category).split(" ")[0], v.project_name or "公司通用 company-wide",
            v.vendor_name, v.vendor_uscc, v.contract_number, v.invoice_type, v.code, v.number,
            v.issue_date.isoformat(), Fen(ex), _rate_text(v.tax_rate, v.ex_tax_fen, v.tax_fen), Fen(tax), Fen(total)]


def _red_cells(v: InvoiceView, r: RedLetterView) -> list[Any]:
    return [CATEGORIES.get(v.category, v.category).split(" ")[0], v.project_name or "公司通用 company-wide",
            v.vendor_name, v.vendor_uscc, v.contract_number, "红字发票 red-letter", r.code, r.number,
            r.issue_date.isoformat(), Fen(r.ex_tax_fen), _rate_text(v.tax_rate, v.ex_tax_fen, v.tax_fen),
            Fen(r.tax_fen), Fen(r.total_fen)]


def build_sheets(ledger: Ledger, year: int, claims: list[ClaimResult], chain_head: str,
                 exported_at: str, checkpoint: Checkpoint) -> list[Sheet]:
    company = claims[0].company
    exported_local = local_time(exported_at)
    footer = [["账簿链头 chain head", chain_head], ["导出时间 exported at", exported_local],
              ["签名检查点 checkpoint", f"{checkpoint.count} rows, head {checkpoint.head}"]]

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
            cells = _invoice_cells(v, net=True)  # net of red-letter invoices: what the base is taken from
            notes = [f"比例 {format_rate(ln.rate)}", *ln.flags]
            detail.rows.append([n, *cells,
                                "；".join(p.pay_date.isoformat() for p in v.payments), Fen(v.paid_fen),
                                "；".join(p.bank_ref for p in v.payments), Fen(ln.base_fen), tag, "；".join(notes)])
            sums["ex"] += v.net_ex_tax_fen
            sums["tax"] += v.net_tax_fen
            sums["total"] += v.net_total_fen
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
    n = 0
    for v in sorted(views.values(), key=lambda x: (x.issue_date, x.id)):
        counted, note = status.get(v.id, ("不适用 not applicable", "费用类别不属于所导出的措施 category outside the "
                                                                   "exported measure(s)"))
        measure = note if counted.startswith("计入") else ""
        n += 1
        inv_sheet.rows.append([n, *_invoice_cells(v), Fen(v.paid_fen), counted, measure,
                               "" if counted.startswith("计入") else note])
        for red in v.red_letters:  # each red-letter invoice on its own row, under its blue one
            n += 1
            inv_sheet.rows.append([n, *_red_cells(v, red), "", "红字 red-letter", "",
                                   f"冲减蓝字发票 cancels part of {v.number}：{red.reason}"])
        isums["ex"] += v.net_ex_tax_fen
        isums["tax"] += v.net_tax_fen
        isums["total"] += v.net_total_fen
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
                                   "已存档 archived" if p.has_file else "无 none", "退款 refund" if p.refund else ""])
            psum += p.amount_fen
    pay_sheet.total = ["合计", "", "", "", "", "", "", Fen(psum), "", "", f"付款金额合计（大写）：{to_capital(psum)}"]

    # 用量明细 (grouped per day; every event is in the evidence ZIP)
    project = claims[0].project if len(claims) == 1 else None
    usage = Sheet("用量明细", ("序号", "日期", "项目", "环节", "引擎", "模型", "设备", "供应商", "计量单位", "数量",
                               "单价(元)", "计价单位数", "事件数", "估算金额", "备注"),
                  footer=footer, widths={3: 16, 5: 14, 6: 18, 15: 40})
    umicro = 0
    uevents = 0
    for n, g in enumerate(ledger.usage.summary(year, company=company.id,
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
    for n, r in enumerate(ledger.recon.reconcile(year, company=company.id), 1):
        recon.rows.append([n, r.vendor_label, r.period, Micro(r.estimated_micro), r.unpriced_events,
                           Fen(r.invoiced_fen), Micro(r.difference_micro),
                           f"发票口径 {'不含税' if basis == 'ex_tax' else '价税合计'}"])

    # 汇总
    summary = Sheet("汇总", ("项目", "内容"), widths={1: 34, 2: 110})
    s = claims[0].settings
    summary.rows += [
        ["企业名称 company", company.name],
        ["统一社会信用代码 USCC", company.uscc],
        ["员工人数 staff", f"{company.headcount}（{year}年度 in {year}；"
                           f"{'一人公司 OPC' if s.is_opc(company.headcount) else '非一人公司 not OPC'}）"],
        ["申报年度 period", f"{year}-01-01 至 {year}-12-31（开票日期 invoice dates）"],
        ["申报基数口径 basis", "不含税金额 ex-tax" if s.basis == "ex_tax" else "价税合计 tax-inclusive"],
        ["导出时间 exported at", exported_local],
        ["账簿链头 chain head", chain_head],
        ["签名检查点 checkpoint", f"{checkpoint.count} 行 rows，链头 head {checkpoint.head}，"
                                  f"{checkpoint.local_time()}"],
        ["签名公钥 signing key (Ed25519)", checkpoint.key],
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
