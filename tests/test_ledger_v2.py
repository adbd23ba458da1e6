"""Ledger v2: one test per finding of the audit (tamper evidence that survives a re-hash, exports
safe to open, the policy read exactly, red-letter invoices and refunds, bad input, an
application-ready PDF)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import ChainError, FieldError, Ledger, LedgerError, PolicyError
from ledger.cli import main as cli_main
from ledger.export import export_claim_package
from tests.support.ledger import (
    USCC_DEEPSEEK,
    USCC_OTHER,
    USCC_RENTAL,
    USCC_STUDIO,
    forge_rehash,
    forge_truncate,
    have_cjk_font,
    n20,
    paid_invoice,
)

USAGE_ROW = {
    "source": "test", "event_at": "2025-03-01T00:00:00+00:00", "event_date": "2025-03-01", "stage": "synth",
    "engine": "diffusers", "model": "sd-turbo", "device": "cuda", "vendor": "", "unit": "gpu_second",
    "quantity": "12.5", "seconds": "12.5", "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0, "licence": "",
    "detail": "{}", "price_id": None, "unit_price": None, "price_per": None, "price_example": 0,
    "amount_micro": None,
}


def ai_usage(lg: Ledger, project: str, run: str = "run-1") -> None:
    """One AI usage event of ``project`` (what `import-usage` brings from the project's usage.sqlite)."""
    pid = lg.master.project(project).id
    lg.usage.add_rows([{**USAGE_ROW, "project_id": pid, "run_id": run, "event_id": f"{run}-e1"}])


@pytest.fixture()
def lg(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "studio.sqlite")
    ledger.master.add_company("影锻文化传媒有限公司", USCC_STUDIO, 10)
    ledger.master.add_vendor("深度求索", USCC_DEEPSEEK, aliases=["deepseek"])
    ledger.master.add_vendor("影棚租赁公司", USCC_RENTAL)
    ledger.master.add_project("逆袭之路", work_type="micro_drama", source_ip="某网络小说", source_kind="web_literature")
    yield ledger
    ledger.close()


def needs_export() -> None:
    pytest.importorskip("openpyxl")
    if not have_cjk_font():
        pytest.skip("no TrueType CJK font for the PDF (apt-get install fonts-wqy-microhei)")


# --- 1. a forged ledger no longer exports cleanly ---------------------------------------------
def test_rehashed_or_truncated_ledger_fails_verify_against_the_export_checkpoint(
        lg: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    needs_export()
    from ledger.checkpoints import key_path

    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "51094.30", "3065.66", "54159.96")
    out = tmp_path / "claim-2025"
    result = export_claim_package(lg, 2025, out, measure="5")
    cp = result.checkpoint
    head = lg.chain_head()
    assert (cp.count, cp.head) == (head.seq, head.hash)  # it covers the rows the export itself wrote
    assert (out / "2025_checkpoint.json").is_file()
    with zipfile.ZipFile(result.evidence_zip) as zf:
        assert json.loads(zf.read("checkpoint.json"))["head"] == cp.head
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600
    assert lg.verify().ok
    db = lg.path
    backup = tmp_path / "genuine.sqlite"
    lg.store.conn.execute(f"VACUUM INTO '{backup}'")
    lg.close()

    # the forger's ledger: ¥300,000 more on the invoice, every hash after it recomputed
    forge_rehash(db, "invoices", 1, {"ex_tax_fen": 5_109_430 + 30_000_000, "total_fen": 5_415_996 + 30_000_000})
    with Ledger(db) as forged:
        report = forged.verify()
        assert not report.ok
        first = str(report.first_broken)
        assert "checkpoint" in first and f"position {cp.count}" in first
        with pytest.raises(ChainError, match="checkpoint"):
            export_claim_package(forged, 2025, tmp_path / "forged-claim", measure="5")
        assert not (tmp_path / "forged-claim" / "2025_claim.xlsx").exists()
        with pytest.raises(ChainError):
            forged.claims.record(5, 2025)
    # the export's own checkpoint file is enough, without the local log
    shutil.rmtree(key_path().parent / "checkpoints")
    with Ledger(db) as forged:
        assert forged.verify().ok  # on its own the re-hashed chain is consistent ...
        against = forged.verify(checkpoints=[out])
        assert not against.ok and f"position {cp.count}" in str(against.first_broken)  # ... not with the export
    assert cli_main(["--db", str(db), "verify", "--checkpoint", str(out / "2025_checkpoint.json")]) == 1
    assert cli_main(["--db", str(db), "export", "--year", "2025", "--out", str(tmp_path / "x"),
                     "--checkpoint", str(out)]) == 2
    assert "checkpoint" in capsys.readouterr().err

    # truncation: the genuine ledger with its newest rows cut off
    cut = tmp_path / "cut.sqlite"
    shutil.copyfile(backup, cut)
    forge_truncate(cut, cp.count - 2)
    with Ledger(cut) as short:
        assert short.verify().ok
        bad = short.verify(checkpoints=[out / "2025_checkpoint.json"])
        assert not bad.ok and "removed" in str(bad.first_broken)


def test_triggers_are_checked_by_their_sql_not_their_names(lg: Ledger) -> None:
    raw = sqlite3.connect(lg.path)
    raw.execute("DROP TRIGGER invoices_append_only_update")
    raw.execute("CREATE TRIGGER invoices_append_only_update BEFORE UPDATE ON invoices WHEN 0 "
                "BEGIN SELECT RAISE(ABORT, 'x'); END")
    raw.execute("CREATE TRIGGER sneaky AFTER INSERT ON payments BEGIN SELECT 1; END")
    raw.commit()
    report = lg.verify()
    assert not report.ok
    text = " ".join(str(p) for p in report.problems)
    assert "invoices_append_only_update" in text and "sneaky" in text


# --- 2. exports are safe to open ----------------------------------------------------------------
def test_formula_like_cells_are_written_as_text(lg: Ledger, tmp_path: Path) -> None:
    needs_export()
    import openpyxl

    evil = '=HYPERLINK("http://evil.example/","点我")'
    lg.master.add_vendor(evil, USCC_OTHER)
    lg.documents.add_invoice(evil, n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    lg.documents.add_payment(n20(2025, 1), "2025-03-02", "106.00", "@SUM(1+1)")
    result = export_claim_package(lg, 2025, tmp_path / "out", measure="5")
    wb = openpyxl.load_workbook(result.xlsx)
    texts = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula: {cell.value!r}"
                if isinstance(cell.value, str):
                    texts.append(cell.value)
    assert evil in texts and "@SUM(1+1)" in texts
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "2025_付款清单.csv").read_text(encoding="utf-8-sig"))))
    cells = [c for r in rows for c in r]
    assert "'" + evil in cells and "'@SUM(1+1)" in cells and evil not in cells


# --- 3. 5人以下 includes 5 ----------------------------------------------------------------------
def test_a_five_person_company_is_an_opc(lg: Ledger) -> None:
    lg.master.update_company(None, headcount=5, year=2025)
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
    r = lg.claims.compute(5, 2025)
    assert r.opc and r.rate == "0.50" and r.claim_fen == 50000
    lg.master.update_company(None, headcount=6, year=2025)
    assert not lg.claims.compute(5, 2025).opc
    help_text = " ".join(zh + en for key, _, zh, en in lg.master.settings().describe() if key == "opc_headcount_max")
    assert "5人以下" in help_text and "第一千二百五十九条" in help_text and "包括本数" in help_text


# --- 4. OPC status by the claim year's headcount ----------------------------------------------
def test_opc_status_uses_the_claim_years_headcount(lg: Ledger) -> None:
    lg.master.update_company(None, headcount=3, year=2025, evidence="2025年社保缴纳名单")
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
    rec = lg.claims.record(5, 2025)
    assert rec.opc and rec.claim_fen == 50000
    lg.master.update_company(None, headcount=12)  # today's staff, no year given
    again = lg.claims.compute(5, 2025)
    assert again.status == "recorded" and again.opc and again.claim_fen == 50000
    assert lg.claims.load(rec.claim_id).opc  # type: ignore[arg-type]
    assert lg.master.headcount(None, 2025) == 3
    assert lg.master.headcount(None, 2026) == 12


def test_a_headcount_without_a_year_applies_until_another_is_recorded(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as lg:
        lg.master.add_company("小工作室", USCC_STUDIO, 3)
        lg.master.add_vendor("深度求索", USCC_DEEPSEEK)
        paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
        rec = lg.claims.record(5, 2025)
        assert rec.opc
        lg.master.update_company(None, headcount=12, evidence_date="2026-01-05")
        assert lg.claims.compute(5, 2025).status == "recorded"
        assert lg.master.headcount(None, 2025) == 3 and lg.master.headcount(None, 2026) == 12


# --- 5. settings that break 从优不重复 or spread a bonus are refused ---------------------------
def test_settings_that_double_claim_or_spread_the_bonus_are_refused(lg: Ledger) -> None:
    with pytest.raises(PolicyError, match="从优不重复"):
        lg.master.set_setting("exclusive_per", "document")
    with pytest.raises(PolicyError, match="亦庄"):
        lg.master.set_setting("m6_bonus_mode", "cap_raised")
    s = lg.master.settings()
    assert (s.exclusive_per, s.m6_bonus_mode) == ("project", "rate_multiplied")
    assert [a["action"] for a in lg.audit(3)][0] != "settings.set"


# --- 6. red-letter invoices and partial refunds ------------------------------------------------
def test_red_letter_invoices_and_refunds_net_the_base(lg: Ledger, tmp_path: Path) -> None:
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
    with pytest.raises(FieldError, match="blue"):
        lg.documents.add_red_invoice(n20(2025, 1), n20(2025, 2), "2025-04-01", "-1200.00", "-72.00", "-1272.00",
                                     reason="超额")
    red = lg.documents.add_red_invoice(n20(2025, 1), n20(2025, 2), "2025-04-01", "-300.00", "-18.00", "-318.00",
                                       reason="部分服务取消 part of the service cancelled")
    assert red.total_fen == -31800 and red.number == n20(2025, 2)
    pay = lg.documents.payments(n20(2025, 1))[0]
    lg.documents.add_refund(pay.id, "2025-04-02", "-318.00", "REFUND-1", reason="退回已取消部分")
    r = lg.claims.compute(5, 2025)
    assert r.base_fen == 70000 and r.claim_fen == 21000
    view = r.lines[0].invoice
    assert (view.net_ex_tax_fen, view.net_total_fen, view.paid_fen) == (70000, 74200, 74200)
    assert [x.number for x in view.red_letters] == [n20(2025, 2)]
    # a refund without a red-letter invoice: the paid share counts
    paid_invoice(lg, "深度求索", n20(2025, 3), "2025-05-01", "1000.00", "60.00", "1060.00")
    pay3 = lg.documents.payments(n20(2025, 3))[0]
    lg.documents.add_refund(pay3.id, "2025-05-09", "-530.00", "REFUND-2", reason="部分退款")
    assert lg.claims.compute(5, 2025).base_fen == 70000 + 50000
    assert lg.verify().ok
    if not have_cjk_font():
        return
    pytest.importorskip("openpyxl")
    out = export_claim_package(lg, 2025, tmp_path / "out", measure="5")
    inv_rows = list(csv.reader(io.StringIO((tmp_path / "out" / "2025_发票清单.csv").read_text(encoding="utf-8-sig"))))
    red_row = next(row for row in inv_rows if n20(2025, 2) in row)
    assert "-318.00" in red_row and any(n20(2025, 1) in c for c in red_row)
    pay_rows = list(csv.reader(io.StringIO((tmp_path / "out" / "2025_付款清单.csv").read_text(encoding="utf-8-sig"))))
    assert any("REFUND-1" in row and "-318.00" in row for row in pay_rows)
    assert out.total_claim_fen == 36000


# --- 7. the policy window, measure 6 for any original work, both OPC figures -------------------
def test_policy_window_starts_in_2025_with_its_reason(lg: Ledger) -> None:
    s = lg.master.settings()
    assert s.window_start == "2025-01-01"
    why = next(zh + en for key, _, zh, en in s.describe() if key == "window_start")
    assert "2025" in why
    paid_invoice(lg, "深度求索", n20(2024, 1), "2024-12-31", "1000.00", "60.00", "1060.00")
    with pytest.raises(PolicyError, match="2025-01-01"):
        lg.claims.compute(5, 2024)


def test_measure6_needs_an_original_work_released_and_converted_with_ai(lg: Ledger) -> None:
    lg.master.add_project("长安旧梦", work_type="series", source_ip="《长安旧梦》（出版小说）", source_kind="literature")
    paid_invoice(lg, "影棚租赁公司", n20(2025, 1), "2025-03-01", "10000.00", "600.00", "10600.00",
                 category="shooting", project="长安旧梦")
    r = lg.claims.compute(6, 2025)
    codes = {c for e in r.excluded for c in e.codes}
    assert r.claim_fen == 0 and {"no_release", "no_ai_usage"} <= codes
    lg.master.add_release("长安旧梦", platform="红果短剧", release_date="2025-06-01",
                          licence_no="（网微剧）备字（2025）第00123号")
    ai_usage(lg, "长安旧梦")
    r = lg.claims.compute(6, 2025)
    assert r.claim_fen == 300000 and not r.excluded
    assert lg.claims.record(6, 2025).status == "recorded"


def test_an_opc_sees_both_rules_and_claims_the_opc_rule(lg: Ledger) -> None:
    lg.master.update_company(None, headcount=2, year=2025)
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "2000000.00", "120000.00", "2120000.00")
    r = lg.claims.compute(5, 2025)
    assert r.opc and r.claim_fen == 50_000_000  # 50 %, capped at ¥500,000
    general = r.general_rule
    assert general is not None and general["claim_fen"] == 60_000_000  # 30 % of ¥2,000,000
    text = "\n".join(r.calculation())
    assert "一人公司" in text and "一般规则" in text and "¥600,000.00" in text


# --- 8. bad input -------------------------------------------------------------------------------
def test_unreadable_csv_control_characters_and_implausible_amounts(
        lg: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(lg.path)
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(f"vendor,number,date,ex_tax,tax,total\n深度求索,{n20(2025, 1)},2025-03-01,100.00,6.00,106.00\n",
                     encoding="utf-16")
    assert cli_main(["--db", db, "invoice", "import", str(utf16)]) == 0
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)) * 4)
    before = lg.chain_head()
    assert cli_main(["--db", db, "invoice", "import", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.csv" in err and "Traceback" not in err
    assert lg.chain_head() == before
    v = lg.master.add_vendor("坏\x1b[2J供应商\u202e\x00", USCC_OTHER)
    assert v.name == "坏[2J供应商"
    with pytest.raises(FieldError, match="confirm"):
        lg.documents.add_invoice("深度求索", n20(2025, 2), "2025-03-01", "9999999999999.00", "0.00",
                                 "9999999999999.00")
    assert cli_main(["--db", db, "invoice", "add", "--vendor", "深度求索", "--number", n20(2025, 2), "--date",
                     "2025-03-01", "--ex-tax", "20000000.00", "--tax", "0.00", "--total", "20000000.00"]) == 2
    assert "--confirm" in capsys.readouterr().err
    assert cli_main(["--db", db, "invoice", "add", "--vendor", "深度求索", "--number", n20(2025, 2), "--date",
                     "2025-03-01", "--ex-tax", "20000000.00", "--tax", "0.00", "--total", "20000000.00",
                     "--confirm"]) == 0


# --- 9. an application-ready PDF --------------------------------------------------------------
def test_pdf_is_an_application_attachment(lg: Ledger, tmp_path: Path) -> None:
    needs_export()
    pypdf = pytest.importorskip("pypdf")
    lg.master.update_company(None, headcount=4, year=2025)
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "12345.67", "740.74", "13086.41")
    rec = lg.claims.record(5, 2025)
    result = export_claim_package(lg, 2025, tmp_path / "out", claim_id=rec.claim_id)
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(str(result.pdf)).pages)
    flat = text.replace(" ", "").replace("\n", "")
    for needle in ("影锻文化传媒有限公司", USCC_STUDIO, "2025-01-01至2025-12-31", "措施5", "¥6,172.83",
                   "陆仟壹佰柒拾贰元捌角叁分", n20(2025, 1), "BANK-000001", "措施6", "单位盖章", "法定代表人",
                   "经办人", "日期", "Asia/Shanghai", result.checkpoint.head, "opc_headcount_max"):
        assert needle.replace(" ", "") in flat, needle
    assert "+00:00" not in text and "UTC" not in text



def test_usage_events_in_the_evidence_zip_are_formula_safe(lg: Ledger, tmp_path: Path) -> None:
    needs_export()
    ai_usage(lg, "逆袭之路", run="=cmd|' /C calc'!A0")
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    result = export_claim_package(lg, 2025, tmp_path / "out", measure="5")
    with zipfile.ZipFile(result.evidence_zip) as zf:
        rows = list(csv.reader(io.StringIO(zf.read("usage/usage_events_2025.csv").decode("utf-8-sig"))))
    assert rows[1][3] == "'=cmd|' /C calc'!A0" and rows[1][1] == "2025-03-01"


def test_checkpoint_log_and_key_are_guarded(lg: Ledger, tmp_path: Path) -> None:
    from ledger.checkpoints import key_path, log_path

    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    lg.claims.record(5, 2025)
    ledger_id = lg.store.ledger_id()
    assert lg.verify().checkpoints == 1
    # the ledger's identity changed behind its back: its checkpoints are still found by its path
    raw = sqlite3.connect(lg.path)
    raw.execute("UPDATE meta SET value = 'forged' WHERE key = 'ledger_id'")
    raw.commit()
    bad = lg.verify()
    assert not bad.ok and "identity was changed" in str(bad.first_broken)
    raw.execute("UPDATE meta SET value = ? WHERE key = 'ledger_id'", (ledger_id,))
    raw.commit()
    # a line removed from the append-only log shows
    log = log_path(ledger_id)
    lg.claims.withdraw(1, reason="重新申报")
    lines = log.read_text(encoding="utf-8").splitlines()
    log.write_text(lines[1] + "\n", encoding="utf-8")
    assert "removed or edited" in str(lg.verify().first_broken)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert lg.verify().ok
    # a key others can read is refused before anything is written
    key_path().chmod(0o644)
    try:
        with pytest.raises(LedgerError, match="chmod 600"):
            lg.claims.record(5, 2025)
    finally:
        key_path().chmod(0o600)
