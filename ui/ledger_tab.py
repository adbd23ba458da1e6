"""The ledger tab of the Gradio studio: enter companies, vendors, invoices and payments, import
usage, check the chain, compute claims and download the claim package.

``build_ledger_tab(default_db)`` adds its components to the enclosing ``gr.Blocks``/``gr.Tab``.
Each handler opens the ledger, does one thing and closes it again, so the tab is safe under
Gradio's worker threads and next to a CLI writing the same file. Handlers are plain functions
(``on_*``) returning text and tables, so they are tested without a browser.

The document archive is never added to Gradio's ``allowed_paths``: the only files the tab hands
out are the exports it has just written to a fresh temporary folder.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.errors import ReelForgeError
from ledger.api import Ledger
from ledger.claims import ClaimResult
from ledger.export import export_claim_package
from ledger.money import format_fen, format_rate, micro_to_decimal, to_capital
from ledger.policy import CATEGORIES, SOURCE_KINDS, WORK_TYPES

log = logging.getLogger(__name__)

INVOICE_HEADERS = ["#", "开票日期 date", "发票号码 number", "供应商 vendor", "类别 category", "项目 project",
                   "不含税 ex-tax", "税额 tax", "价税合计 total", "已付 paid", "申报 claims"]
RECON_HEADERS = ["供应商 vendor", "期间 period", "用量估算 estimated", "未定价 unpriced", "发票 invoiced",
                 "差额 difference"]


def _err(e: Exception) -> str:
    if isinstance(e, ReelForgeError):
        hint = f"\n\n提示 hint: {e.hint}" if e.hint else ""
        return f"**错误 error:** {e.message}{hint}"
    ref = secrets.token_hex(4)  # the browser gets the reference; the server log the traceback
    log.error("ledger tab: unexpected error [ref %s]", ref, exc_info=e)
    return f"**错误 error:** 内部错误，编号 {ref}：服务器日志里有详情 · internal error, reference {ref}: see the server log"


def _actor() -> str | None:
    """The studio account acting now (the ledger's audit log names it); None: the OS user."""
    from ui.access import acting

    who = acting.get()
    return who.name if who is not None and not who.local else None


def _open(db: str) -> Ledger:
    if not db or not str(db).strip():
        raise ReelForgeError("no ledger file given", hint="enter the path of the ledger file, e.g. ledger.sqlite")
    return Ledger(Path(str(db).strip()).expanduser(), actor=_actor())


def _year(value: Any) -> int:
    try:
        return int(Decimal(str(value)))
    except Exception as e:
        raise ReelForgeError(f"year {value!r} is not a year", hint="e.g. 2025") from e


# --- handlers ---------------------------------------------------------------------------------
def on_verify(db: str) -> str:
    try:
        with _open(db) as lg:
            r = lg.verify()
            return ("✅ " if r.ok else "❌ ") + r.summary() + "".join(f"\n- {p}" for p in r.problems[1:10])
    except Exception as e:
        return _err(e)


def on_add_company(db: str, name: str, uscc: str, headcount: Any) -> str:
    try:
        with _open(db) as lg:
            c = lg.master.add_company(name, uscc, headcount)
            opc = "一人公司 OPC" if lg.master.settings().is_opc(c.headcount) else "非一人公司 not an OPC"
            return f"已添加公司 company added: {c.name}（{c.uscc}，{c.headcount} 人，{opc}）"
    except Exception as e:
        return _err(e)


def on_add_vendor(db: str, name: str, uscc: str, related: bool, aliases: str) -> str:
    try:
        with _open(db) as lg:
            v = lg.master.add_vendor(name, uscc, related_party=bool(related),
                              aliases=[a for a in (aliases or "").replace("，", ",").split(",") if a.strip()])
            return f"已添加供应商 vendor added: {v.name}（{v.uscc}{'，关联方 related party' if v.related_party else ''}）"
    except Exception as e:
        return _err(e)


def on_add_project(db: str, name: str, work_type: str, source_ip: str, source_kind: str, yizhuang: bool) -> str:
    try:
        with _open(db) as lg:
            p = lg.master.add_project(name, work_type=work_type or "", source_ip=source_ip or "",
                               source_kind=source_kind or "", yizhuang=bool(yizhuang))
            return f"已添加项目 project added: {p.name}"
    except Exception as e:
        return _err(e)


def on_add_invoice(db: str, vendor: str, number: str, code: str, day: str, ex_tax: str, tax: str, total: str,
                   tax_rate: str, category: str, project: str, file: Any) -> str:
    try:
        with _open(db) as lg:
            inv = lg.documents.add_invoice(vendor, number, day, ex_tax, tax, total, code=code or "",
                                 tax_rate=tax_rate or None, category=category or "ai_tech",
                                 project=project or None, file=_file_path(file))
            flags = "".join(f"\n- 注意 flagged: {f}" for f in inv.flags)
            return f"已添加发票 invoice added: {inv.number}，价税合计 ¥{format_fen(inv.total_fen)}{flags}"
    except Exception as e:
        return _err(e)


def on_add_payment(db: str, invoice: str, code: str, day: str, amount: str, bank_ref: str, file: Any) -> str:
    try:
        with _open(db) as lg:
            p = lg.documents.add_payment(invoice, day, amount, bank_ref, code=code or "", file=_file_path(file))
            return f"已登记付款 payment recorded: ¥{format_fen(p.amount_fen)}（{p.bank_ref}）"
    except Exception as e:
        return _err(e)


def _file_path(file: Any) -> str | None:
    if file is None or file == "":
        return None
    if isinstance(file, str | Path):
        return str(file)
    return str(getattr(file, "name", file))


def on_list_invoices(db: str, year: Any) -> tuple[list[list[Any]], str]:
    try:
        with _open(db) as lg:
            c = lg.master.company(None)
            views = lg.documents.invoice_views(c.id, _year(year) if year not in (None, "") else None)
            rows = [[v.id, v.issue_date.isoformat(), (v.code + " " if v.code else "") + v.number, v.vendor_name,
                     v.category_label, v.project_name, format_fen(v.ex_tax_fen), format_fen(v.tax_fen),
                     format_fen(v.total_fen), format_fen(v.paid_fen), ", ".join(f"#{i}" for i in v.claimed_in)]
                    for v in views]
            return rows, f"{len(rows)} 张发票 invoices，价税合计 ¥{format_fen(sum(v.total_fen for v in views))}"
    except Exception as e:
        return [], _err(e)


def on_import_usage(db: str, project_dir: str, project: str, allow_unpriced: bool) -> str:
    try:
        with _open(db) as lg:
            r = lg.usage.import_project(project_dir, project=project or None, allow_unpriced=bool(allow_unpriced))
            lines = [f"用量导入 usage imported into {r.project!r}: {r.imported} new, {r.skipped} already in the ledger, "
                     f"estimated ¥{micro_to_decimal(r.estimated_micro)}"]
            if r.example_priced:
                lines.append(f"- 注意 flagged: {r.example_priced} events priced from EXAMPLE prices: edit the price book")
            if r.unpriced:
                lines.append(f"- 注意 flagged: {r.unpriced} events have no price")
            return "\n".join(lines)
    except Exception as e:
        return _err(e)


def on_reconcile(db: str, year: Any, period: str) -> tuple[list[list[Any]], str]:
    try:
        with _open(db) as lg:
            rows = lg.recon.reconcile(_year(year), period=period or "month")
            table = [[r.vendor_label, r.period, str(micro_to_decimal(r.estimated_micro)), r.unpriced_events,
                      format_fen(r.invoiced_fen), str(micro_to_decimal(r.difference_micro))] for r in rows]
            return table, f"{len(rows)} 行 rows"
    except Exception as e:
        return [], _err(e)


def _claim_markdown(result: ClaimResult) -> str:
    lines = [f"### 措施{result.measure} — {result.year}", *[f"- {x}" for x in result.calculation()]]
    for ln in result.lines:
        flags = f"（{'；'.join(ln.flags)}）" if ln.flags else ""
        lines.append(f"  - 计入 {ln.invoice.number} ¥{format_fen(ln.base_fen)} × {format_rate(ln.rate)}{flags}")
    for e in result.excluded:
        lines.append(f"  - 未计入 {e.invoice.number}: {'；'.join(e.reasons)}")
    for note in result.notes:
        lines.append(f"- 说明 note: {note}")
    return "\n".join(lines)


def on_claim(db: str, measure: str, year: Any, project: str, record: bool) -> tuple[str, dict[str, Any]]:
    try:
        if record:  # computing is seeing the ledger; recording a claim is preparing one
            from core.permissions import require
            from ui.access import acting

            who = acting.get()
            if who is not None:
                require(who, "claim.prepare")
        with _open(db) as lg:
            y = _year(year)
            lg.integrity.require_intact(before=f"compute a claim for {y}")  # never from a ledger that fails verify
            if str(measure) == "best":
                plan = lg.claims.plan_best(y, project=project or None)
                if record and plan.claims:
                    plan.claims = lg.claims.record_plan(plan)
                text = "\n\n".join(_claim_markdown(c) for c in plan.claims) or "没有可申报的发票 nothing to claim"
                text += "\n\n" + "\n".join(f"- 方案 option: {o}: ¥{format_fen(f)}" for o, f in plan.options)
                text += "\n" + "\n".join(f"- {n}" for n in plan.notes)
                text += f"\n\n**建议申报合计 recommended total: ¥{format_fen(plan.total_fen)}（{to_capital(plan.total_fen)}）**"
                data = plan.to_json()
            else:
                m = int(measure)
                result = (lg.claims.record(m, y, project=project or None) if record
                          else lg.claims.compute(m, y, project=project or None))
                text = _claim_markdown(result)
                if result.comparison:
                    c = result.comparison
                    text += (f"\n\n比较 comparison: 措施{c['other_measure']} ¥{format_fen(c['other_claim_fen'])}；"
                             f"建议 recommended 措施{c['recommended_measure']}")
                data = result.to_json()
            head = lg.chain_head().hash
            data["chain_head"] = head
            return text + f"\n\n账簿链头 chain head: `{head}`", json.loads(json.dumps(data, default=str))
    except Exception as e:
        return _err(e), {}


def on_approve_claim(db: str, claim_id: Any, note: str) -> str:
    """Record the acting person as the approver of a recorded claim; shows who prepared it."""
    try:
        try:
            cid = int(Decimal(str(claim_id)))
        except Exception as e:
            raise ReelForgeError(f"claim number {claim_id!r} is not a number", hint="e.g. 1") from e
        with _open(db) as lg:
            s = lg.claims.approve(cid, note or "")
        same = "（同一人 the same person）" if s.prepared_by == s.approved_by else ""
        return (f"申报 #{s.claim_id} 已批准 approved：编制 prepared by {s.prepared_by} ({s.prepared_at})，"
                f"批准 approved by {s.approved_by} ({s.approved_at}){same}")
    except Exception as e:
        return _err(e)


def on_export(db: str, year: Any, measure: str, project: str) -> tuple[list[str], str]:
    try:
        with _open(db) as lg:
            out = Path(tempfile.mkdtemp(prefix="reelforge-claim-"))
            r = export_claim_package(lg, _year(year), out, measure=str(measure or "best"), project=project or None)
            text = (f"已导出 exported {len(r.files)} files；申报补贴合计 total ¥{format_fen(r.total_claim_fen)}"
                    f"（{to_capital(r.total_claim_fen)}）；证据包文件 {r.documents} documents\n\n"
                    f"账簿链头 chain head: `{r.chain_head}`\n\n签名检查点 signed checkpoint: {r.checkpoint.count} "
                    f"rows, head `{r.checkpoint.head}`, key `{r.checkpoint.key}`")
            return [str(p) for p in r.files], text
    except Exception as e:
        return [], _err(e)


# --- layout -----------------------------------------------------------------------------------
def build_ledger_tab(default_db: str, access: Any = None) -> None:
    """Add the ledger's components to the enclosing ``gr.Blocks`` / ``gr.Tab`` context.

    With ``access`` (a :class:`ui.access.StudioAccess`) every handler checks the person's role
    on the server (``ledger.view``, ``ledger.edit``, ``claim.prepare``, ``claim.approve``,
    ``ledger.export``); in a studio with accounts the ledger file is the configured one, never
    a path sent by the browser."""
    try:
        import gradio as gr
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("gradio", "ui") from e

    locked = access is not None and access.mode == "accounts"

    def wire(action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if access is None:
            return fn

        @functools.wraps(fn)
        def fixed(db: str, *rest: Any) -> Any:
            return fn(default_db if locked else db, *rest)

        return access.action(action)(fixed)  # type: ignore[no-any-return]

    gr.Markdown("## 费用台账与补贴申报 AI-spend ledger and subsidy claims\n"
                "防篡改台账（只追加、哈希链），措施5/6 补贴计算，申报材料导出。"
                "Append-only, hash-chained records; measure 5/6 claims; claim-ready exports.")
    db = gr.Textbox(label="台账文件 Ledger file", value=default_db, interactive=not locked)
    with gr.Tabs():
        with gr.Tab("校验 Verify"):
            verify_btn = gr.Button("校验哈希链 Verify the chain", variant="primary")
            verify_out = gr.Markdown()
            verify_btn.click(wire("ledger.view", on_verify), inputs=[db], outputs=[verify_out])

        with gr.Tab("主体 Companies, vendors, projects"):
            with gr.Row():
                c_name = gr.Textbox(label="公司名称 Company name")
                c_uscc = gr.Textbox(label="统一社会信用代码 USCC")
                c_head = gr.Number(label="员工人数 Staff", value=1, precision=0)
            c_btn = gr.Button("添加公司 Add company")
            c_out = gr.Markdown()
            c_btn.click(wire("ledger.edit", on_add_company), inputs=[db, c_name, c_uscc, c_head], outputs=[c_out])
            with gr.Row():
                v_name = gr.Textbox(label="供应商名称 Vendor name")
                v_uscc = gr.Textbox(label="统一社会信用代码 USCC")
                v_rel = gr.Checkbox(label="关联方 Related party")
                v_alias = gr.Textbox(label="用量记录中的名称 Names in usage records (comma separated)")
            v_btn = gr.Button("添加供应商 Add vendor")
            v_out = gr.Markdown()
            v_btn.click(wire("ledger.edit", on_add_vendor), inputs=[db, v_name, v_uscc, v_rel, v_alias], outputs=[v_out])
            with gr.Row():
                p_name = gr.Textbox(label="项目名称 Project")
                p_type = gr.Dropdown(choices=[k for k in WORK_TYPES if k], label="作品类型 Work type")
                p_ip = gr.Textbox(label="源IP Source IP")
                p_kind = gr.Dropdown(choices=[k for k in SOURCE_KINDS if k], label="IP来源 Source kind")
                p_yz = gr.Checkbox(label="亦庄主题 Yizhuang theme")
            p_btn = gr.Button("添加项目 Add project")
            p_out = gr.Markdown()
            p_btn.click(wire("ledger.edit", on_add_project), inputs=[db, p_name, p_type, p_ip, p_kind, p_yz], outputs=[p_out])

        with gr.Tab("发票与付款 Invoices and payments"):
            with gr.Row():
                i_vendor = gr.Textbox(label="供应商 Vendor (name or USCC)")
                i_number = gr.Textbox(label="发票号码 Number")
                i_code = gr.Textbox(label="发票代码 Code (older invoices only)")
                i_date = gr.Textbox(label="开票日期 Date", placeholder="YYYY-MM-DD")
            with gr.Row():
                i_ex = gr.Textbox(label="金额(不含税) Ex-tax", placeholder="100.00")
                i_tax = gr.Textbox(label="税额 Tax", placeholder="6.00")
                i_total = gr.Textbox(label="价税合计 Total", placeholder="106.00")
                i_rate = gr.Textbox(label="税率 Tax rate", placeholder="6%")
                i_cat = gr.Dropdown(choices=list(CATEGORIES), value="ai_tech", label="费用类别 Category")
                i_proj = gr.Textbox(label="项目 Project")
            i_file = gr.File(label="发票文件 Invoice file (archived with its sha256)", type="filepath")
            i_btn = gr.Button("添加发票 Add invoice", variant="primary")
            i_out = gr.Markdown()
            i_btn.click(wire("ledger.edit", on_add_invoice), inputs=[db, i_vendor, i_number, i_code, i_date, i_ex, i_tax, i_total, i_rate,
                                                i_cat, i_proj, i_file], outputs=[i_out])
            with gr.Row():
                pay_inv = gr.Textbox(label="发票号码 Invoice number")
                pay_code = gr.Textbox(label="发票代码 Code")
                pay_date = gr.Textbox(label="付款日期 Date", placeholder="YYYY-MM-DD")
                pay_amount = gr.Textbox(label="付款金额 Amount")
                pay_ref = gr.Textbox(label="银行流水号 Bank reference")
            pay_file = gr.File(label="付款凭证 Payment proof", type="filepath")
            pay_btn = gr.Button("登记付款 Record payment")
            pay_out = gr.Markdown()
            pay_btn.click(wire("ledger.edit", on_add_payment), inputs=[db, pay_inv, pay_code, pay_date, pay_amount, pay_ref, pay_file],
                          outputs=[pay_out])
            list_year = gr.Number(label="年度 Year (empty: all)", precision=0)
            list_btn = gr.Button("列出发票 List invoices")
            list_table = gr.Dataframe(headers=INVOICE_HEADERS, interactive=False)
            list_out = gr.Markdown()
            list_btn.click(wire("ledger.view", on_list_invoices), inputs=[db, list_year], outputs=[list_table, list_out])

        with gr.Tab("用量 Usage"):
            u_dir = gr.Textbox(label="项目文件夹 Project folder (holds usage.sqlite)")
            u_proj = gr.Textbox(label="台账项目名 Ledger project (default: folder name)")
            u_unpriced = gr.Checkbox(label="允许无价格事件 Import events without a price")
            u_btn = gr.Button("导入用量 Import usage")
            u_out = gr.Markdown()
            u_btn.click(wire("ledger.edit", on_import_usage), inputs=[db, u_dir, u_proj, u_unpriced], outputs=[u_out])
            r_year = gr.Number(label="年度 Year", value=2025, precision=0)
            r_period = gr.Radio(choices=["month", "quarter", "year"], value="month", label="期间 Period")
            r_btn = gr.Button("对账 Reconcile usage against invoices")
            r_table = gr.Dataframe(headers=RECON_HEADERS, interactive=False)
            r_out = gr.Markdown()
            r_btn.click(wire("ledger.view", on_reconcile), inputs=[db, r_year, r_period], outputs=[r_table, r_out])

        with gr.Tab("申报 Claim"):
            with gr.Row():
                k_measure = gr.Radio(choices=["5", "6", "best"], value="best", label="措施 Measure")
                k_year = gr.Number(label="年度 Year", value=2025, precision=0)
                k_proj = gr.Textbox(label="项目 Project (empty: whole company)")
                k_record = gr.Checkbox(label="登记为有效申报 Record as an active claim")
            k_btn = gr.Button("计算 Compute", variant="primary")
            k_out = gr.Markdown()
            k_json = gr.JSON(label="JSON")
            k_btn.click(wire("ledger.view", on_claim), inputs=[db, k_measure, k_year, k_proj, k_record],
                        outputs=[k_out, k_json])
            with gr.Row():
                a_id = gr.Number(label="申报编号 Claim #", precision=0)
                a_note = gr.Textbox(label="批准意见 Note")
            a_btn = gr.Button("批准申报 Approve claim (admin)")
            a_out = gr.Markdown()
            a_btn.click(wire("claim.approve", on_approve_claim), inputs=[db, a_id, a_note], outputs=[a_out])

        with gr.Tab("导出 Export"):
            with gr.Row():
                e_year = gr.Number(label="年度 Year", value=2025, precision=0)
                e_measure = gr.Radio(choices=["5", "6", "best"], value="best", label="措施 Measure")
                e_proj = gr.Textbox(label="项目 Project (empty: whole company)")
            e_btn = gr.Button("导出申报材料 Export claim package", variant="primary")
            e_files = gr.File(label="申报材料 Claim package", file_count="multiple", interactive=False)
            e_out = gr.Markdown()
            e_btn.click(wire("ledger.export", on_export), inputs=[db, e_year, e_measure, e_proj], outputs=[e_files, e_out])
