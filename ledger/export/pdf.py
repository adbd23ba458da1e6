"""The PDF summary of a claim package (reportlab, with an embedded CJK font)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.claims import ClaimResult
from ledger.export.sheets import MEASURE_LABEL
from ledger.money import format_fen, to_capital


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
