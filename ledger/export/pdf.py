"""The PDF of a claim package, laid out as an application attachment (reportlab, with an
embedded CJK font; every time in China time, Asia/Shanghai):

1. a cover: the company's identity (name, credit code, staff in the claim year and OPC status),
   the period, each measure and its amount in figures and in capitals (大写);
2. per claim: the calculation, the other measure's figure and why this one was chosen;
3. the invoice list with the payment proof behind each invoice (dates, bank references, whether
   the receipt is archived), and the invoices left out with the reason;
4. the settings the figures were computed with;
5. the signed checkpoint and how to check it;
6. the signature and seal block (单位盖章, 法定代表人, 经办人, 日期).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.checkpoints import Checkpoint, local_time
from ledger.claims import MEASURE_NAMES, ClaimResult
from ledger.export.sheets import MEASURE_LABEL
from ledger.money import format_fen, format_rate, to_capital

STATUS = {"draft": "草稿（未登记）draft, not recorded", "recorded": "已登记申报 recorded claim #{id}",
          "changed_since_recorded": "已登记申报 #{id}，账簿此后有变动 ledger changed since",
          "withdrawn": "已撤回 withdrawn #{id}"}


def _why(c: ClaimResult) -> str:
    cmp_ = c.comparison
    if not cmp_:
        return ""
    other, other_fen = cmp_["other_measure"], cmp_["other_claim_fen"]
    if c.claim_fen >= other_fen:
        reason = (f"本措施金额不低于措施{other}，按从优不重复原则选择本措施 this measure gives at least as much as "
                  f"measure {other}; a project is claimed under the better measure only (从优不重复)")
    else:
        reason = (f"措施{other}金额更高，但其发票已分配给另一措施或另有申报；本申报按所选措施计算 measure {other} "
                  "would give more for this scope; this claim follows the measure chosen")
    return (f"另一措施 other measure: 措施{other} 同一范围为 ¥{format_fen(other_fen)}（{to_capital(other_fen)}）。"
            f"选择理由 why: {reason}")


def write_pdf(path: Path, *, claims: list[ClaimResult], year: int, chain_head: str,
              exported_at: str, checkpoint: Checkpoint) -> None:
    try:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.lib.units import mm
        from reportlab.pdfgen import canvas as rl_canvas
        from reportlab.platypus import (
            PageBreak,
            Paragraph,
            SimpleDocTemplate,
            Spacer,
            Table,
            TableStyle,
        )
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
    title = ParagraphStyle("title", parent=body, fontSize=17, leading=24, spaceAfter=8, alignment=1)
    h2 = ParagraphStyle("h2", parent=body, fontSize=12, leading=18, spaceBefore=8, spaceAfter=4)

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    def table(rows: list[list[str]], widths: list[float], *, header: bool = False, style: Any = small) -> Table:
        t = Table([[p(c, style) for c in r] for r in rows], colWidths=widths, repeatRows=1 if header else 0)
        commands: list[Any] = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEF3FA")) if header
                        else ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#EEF3FA")))
        t.setStyle(TableStyle(commands))
        return t

    total = sum(c.claim_fen for c in claims)
    opc = s.is_opc(company.headcount)
    staff = (f"{company.headcount} 人（{year}年度 in {year}）："
             + (f"一人公司 OPC（{s.opc_headcount_max}人以下，含本数）" if opc else "非一人公司 not an OPC"))
    # 1. cover
    story: list[Any] = [
        Spacer(1, 12 * mm),
        p(f"{year}年度 AI费用补贴申报材料", title),
        p("Subsidy application attachment: AI spend (measures 5 and 6)", ParagraphStyle("sub", parent=body,
                                                                                          alignment=1)),
        Spacer(1, 8 * mm),
        table([
            ["申报单位 applicant", company.name],
            ["统一社会信用代码 USCC", company.uscc],
            ["员工人数 staff", staff],
            ["申报期间 period", f"{year}-01-01 至 {year}-12-31（按开票日期 by invoice date）"],
            *[[f"{MEASURE_LABEL[c.measure]} 申报金额 amount",
               f"¥{format_fen(c.claim_fen)}　大写：{to_capital(c.claim_fen)}　"
               f"（{MEASURE_NAMES[c.measure]}；{STATUS[c.status].format(id=c.claim_id)}）"] for c in claims],
            ["合计 total", f"¥{format_fen(total)}　大写：{to_capital(total)}"],
            ["导出时间 exported at", local_time(exported_at)],
            ["账簿链头 chain head", chain_head],
        ], [42 * mm, 138 * mm], style=body),
        PageBreak(),
    ]
    # 2.-3. per claim: calculation, comparison, invoices with payment proof, exclusions
    for c in claims:
        story.append(p(f"{MEASURE_LABEL[c.measure]} — {STATUS[c.status].format(id=c.claim_id)}", h2))
        story.append(table([[f"{i + 1}", line] for i, line in enumerate(c.calculation())], [10 * mm, 170 * mm]))
        why = _why(c)
        if why:
            story.append(Spacer(1, 3))
            story.append(p(why, small))
        for note in c.notes:
            story.append(p("说明 note: " + note, small))
        rows = [["序号", "发票号码 / 开票日期", "供应商", "价税合计（净额）", "计入基数 / 比例", "付款凭证 payment proof"]]
        for n, ln in enumerate(c.lines, 1):
            v = ln.invoice
            proof = "；".join(f"{x.pay_date.isoformat()} {'退款 refund ' if x.refund else ''}¥{format_fen(x.amount_fen)} "
                             f"流水号 {x.bank_ref}{'（凭证已存档 receipt archived）' if x.has_file else '（无凭证 no receipt）'}"
                             for x in v.payments) or "未登记付款 none recorded"
            reds = "".join(f"；红字 {r.number} ¥{format_fen(r.total_fen)}" for r in v.red_letters)
            rows.append([str(n), f"{(v.code + ' ') if v.code else ''}{v.number} / {v.issue_date.isoformat()}{reds}",
                         v.vendor_name, f"¥{format_fen(v.net_total_fen)}",
                         f"¥{format_fen(ln.base_fen)} × {format_rate(ln.rate)}", proof])
        rows.append(["", "合计 total", "", f"¥{format_fen(sum(ln.invoice.net_total_fen for ln in c.lines))}",
                     f"¥{format_fen(c.base_fen)}", ""])
        story.append(Spacer(1, 4))
        story.append(p("发票清单 invoices in this claim", small))
        story.append(table(rows, [10 * mm, 42 * mm, 30 * mm, 24 * mm, 28 * mm, 46 * mm], header=True))
        if c.excluded:
            left = [["发票号码 invoice", "未计入原因 why not counted"]]
            left += [[e.invoice.number, "；".join(e.reasons)] for e in c.excluded[:60]]
            if len(c.excluded) > 60:
                left.append(["…", f"另有 {len(c.excluded) - 60} 张，见发票清单 see the 发票清单 sheet"])
            story.append(Spacer(1, 4))
            story.append(table(left, [50 * mm, 130 * mm], header=True))
    # 4. settings
    story.append(p("设置 settings（本材料所用规则 the rules these figures were computed with）", h2))
    story.append(table([[k, f"{v} — {zh} / {en}"] for k, v, zh, en in s.describe()], [40 * mm, 140 * mm]))
    # 5. checkpoint
    story.append(p("签名检查点 signed checkpoint", h2))
    story.append(table([
        ["条目数 rows", str(checkpoint.count)],
        ["链头 head", checkpoint.head],
        ["时间 time", checkpoint.local_time()],
        ["签名公钥 key (Ed25519)", checkpoint.key],
        ["签名 signature", checkpoint.signature],
        ["核对 check", "reelforge ledger --db 台账文件 verify --checkpoint 本导出目录 --trust-key 上列公钥：账簿须仍包含"
                     "此检查点 (the ledger must still extend this checkpoint)"],
    ], [40 * mm, 140 * mm]))
    # 6. signature and seal
    story.append(p("申报单位确认 declaration", h2))
    story.append(p("本单位承诺以上材料及所附发票、付款凭证真实、完整，申报金额按所列规则计算。"
                   "The applicant declares the above and the attached invoices and payment proofs true and complete.",
                   small))
    story.append(Spacer(1, 4))
    seal = Table([[p("单位盖章（公章）", body), p("法定代表人（签字）", body)],
                  [Spacer(1, 28 * mm), Spacer(1, 28 * mm)],
                  [p("经办人（签字）", body), p("联系电话", body)],
                  [Spacer(1, 14 * mm), Spacer(1, 14 * mm)],
                  [p("日期：　　　　年　　月　　日", body), p("日期：　　　　年　　月　　日", body)]],
                 colWidths=[90 * mm, 90 * mm])
    seal.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.6, colors.black),
                              ("INNERGRID", (0, 0), (-1, -1), 0.3, colors.grey),
                              ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story.append(seal)
    story.append(Spacer(1, 6))
    story.append(p("本材料由 ReelForge 账簿生成；每张发票、付款凭证的存档文件及其 sha256 见证据包 evidence ZIP。"
                   "Generated by the ReelForge ledger; archived documents and their sha256 are in the evidence ZIP.",
                   small))
    doc = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title=f"{company.name} {year} 补贴申报材料",
                            initialFontName=FONT_NAME,  # so every font in the file is the embedded one
                            author="ReelForge ledger", subject=f"chain head {chain_head}")
    doc.build(story, canvasmaker=NumberedCanvas)
