from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from core.usage import UsageRecord, UsageStore
from ledger import (
    ClaimConflictError,
    DuplicateError,
    FieldError,
    Ledger,
    LedgerError,
    PolicyError,
    PolicySettings,
    PriceBook,
    PriceEntry,
    schema,
)
from ledger.cli import main as cli_main
from ledger.csvimport import import_invoices, import_payments
from ledger.export import export_claim_package
from ledger.money import micro_to_fen, parse_rate, parse_yuan, to_capital
from ledger.pricebook import load_price_toml
from ledger.validate import (
    parse_date,
    uscc_check_char,
    validate_invoice_id,
    validate_uscc,
)
from tests.support.ledger import (
    USCC_DEEPSEEK,
    USCC_OTHER,
    USCC_RELATED,
    USCC_RENTAL,
    USCC_STUDIO,
    have_cjk_font,
    make_uscc,
    n20,
    paid_invoice,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def lg(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "studio.sqlite")
    ledger.master.add_company("影锻文化传媒有限公司", USCC_STUDIO, 10)
    ledger.master.add_vendor("深度求索", USCC_DEEPSEEK, aliases=["deepseek"])
    ledger.master.add_vendor("影棚租赁公司", USCC_RENTAL)
    ledger.master.add_vendor("关联方工作室", USCC_RELATED, related_party=True)
    ledger.master.add_project("逆袭之路", work_type="micro_drama", source_ip="某网络小说", source_kind="web_literature")
    ledger.master.add_project("亦庄星光", work_type="series", source_ip="亦庄网文", source_kind="web_literature",
                       yizhuang=True)
    ledger.master.add_project("宣传片", work_type="other")
    yield ledger
    ledger.close()


def m6_ready(ledger: Ledger, *names: str) -> None:
    """Measure 6 needs each project's release and the AI usage that converted the work."""
    for name in names:
        ledger.master.add_release(name, platform="红果短剧", release_date="2025-02-01",
                                  licence_no="（网微剧）备字（2025）第00001号")
        pid = ledger.master.project(name).id
        ledger.usage.add_rows([{
            "project_id": pid, "source": "test", "run_id": f"ai-conversion-{pid}", "event_id": "e1",
            "event_at": "2025-01-20T00:00:00+00:00", "event_date": "2025-01-20", "stage": "synth",
            "engine": "diffusers", "model": "sd-turbo", "device": "cuda", "vendor": "", "unit": "gpu_second",
            "quantity": "1", "seconds": "1", "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0, "licence": "",
            "detail": "{}", "price_id": None, "unit_price": None, "price_per": None, "price_example": 0,
            "amount_micro": None}])



# --- money ------------------------------------------------------------------------------------
def test_capital_numerals() -> None:
    assert to_capital(123456789) == "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"
    assert to_capital(10000) == "壹佰元整"
    assert to_capital(100000005) == "壹佰万元零伍分"
    assert to_capital(0) == "零元整"
    assert to_capital(5) == "伍分"
    assert to_capital(50) == "伍角"
    assert to_capital(1050) == "壹拾元伍角"
    assert to_capital(10001000) == "壹拾万零壹拾元整"
    assert to_capital(100000000000) == "壹拾亿元整"
    assert to_capital(100100000000) == "壹拾亿零壹佰万元整"
    assert to_capital(100010000000) == "壹拾亿零壹拾万元整"
    assert to_capital(-10600) == "负壹佰零陆元整"


def test_parse_yuan_is_exact_and_strict() -> None:
    assert parse_yuan("106.00", "x") == 10600
    assert parse_yuan("0.1", "x") == 10
    assert parse_yuan("1,234,567.89", "x") == 123456789
    assert parse_yuan("¥12", "x") == 1200
    for bad in ("1.005", "12,34.00", "abc", "1e3", "", "-5"):
        with pytest.raises(FieldError, match="ex_tax"):
            parse_yuan(bad, "ex_tax")
    with pytest.raises(FieldError, match="float"):
        parse_yuan(1.5, "ex_tax")  # type: ignore[arg-type]
    assert parse_rate("6%", "r") == Decimal("0.06")
    assert micro_to_fen(5000) == 1 and micro_to_fen(4999) == 0


# --- validation -------------------------------------------------------------------------------
def test_uscc_validation() -> None:
    for code in (USCC_STUDIO, USCC_DEEPSEEK, USCC_RENTAL, USCC_RELATED, USCC_OTHER):
        assert validate_uscc(code) == code
    assert validate_uscc(" " + USCC_STUDIO.lower() + " ") == USCC_STUDIO
    with pytest.raises(FieldError, match=r"uscc.*18 characters"):
        validate_uscc("91350100M000100Y4")
    with pytest.raises(FieldError, match=r"uscc.*not allowed.*I"):
        validate_uscc("91350100M0001I0Y43")
    with pytest.raises(FieldError, match=r"uscc.*position 18.*'3'"):
        validate_uscc("91350100M000100Y44")
    # organisation code check digit wrong, final check character made consistent again
    first17 = "91350100M000100Y5"
    with pytest.raises(FieldError, match=r"uscc.*GB 11714"):
        validate_uscc(first17 + uscc_check_char(first17))
    with pytest.raises(FieldError, match="positions 3-8"):
        validate_uscc(make_uscc("9135A100M000100Y"))


def test_invoice_number_and_date_validation() -> None:
    d = date(2025, 3, 1)
    assert validate_invoice_id(n20(2025, 7), "", d).kind == "digital"
    assert validate_invoice_id("12345678", "1100251130", d).kind == "legacy"
    assert validate_invoice_id("12345678", "011002500111", d).code == "011002500111"
    with pytest.raises(FieldError, match=r"number.*year '24'"):
        validate_invoice_id(n20(2024, 7), "", d)
    with pytest.raises(FieldError, match=r"number.*20 digits"):
        validate_invoice_id("2511100000000000001", "", d)
    with pytest.raises(FieldError, match=r"number.*needs its code"):
        validate_invoice_id("12345678", "", d)
    with pytest.raises(FieldError, match=r"code.*10 or 12"):
        validate_invoice_id("12345678", "123", d)
    with pytest.raises(FieldError, match=r"number.*8-digit"):
        validate_invoice_id("1234567", "1100251130", d)
    with pytest.raises(FieldError, match=r"number.*digits only"):
        validate_invoice_id("25111000000000000A01", "", d)
    with pytest.raises(FieldError, match=r"date.*YYYY-MM-DD"):
        parse_date("2025/03/01")
    with pytest.raises(FieldError, match=r"date.*calendar"):
        parse_date("2025-02-29")
    with pytest.raises(FieldError, match=r"date.*future"):
        parse_date("2999-01-01")


def test_add_invoice_refuses_malformed_input_naming_the_field(lg: Ledger) -> None:
    ok = dict(vendor="深度求索", number=n20(2025, 1), issue_date="2025-03-01", ex_tax="100.00", tax="6.00",
              total="106.00")
    cases = [
        ({"total": "106.01"}, r"total \(价税合计\).*does not equal"),
        ({"ex_tax": "100.001"}, r"ex_tax.*two decimal"),
        ({"issue_date": "2025-13-01"}, r"date \(开票日期\)"),
        ({"number": n20(2024, 1)}, r"number \(发票号码\).*year"),
        ({"category": "lunch"}, r"category \(费用类别\)"),
        ({"tax": "-6.00", "total": "94.00"}, r"tax \(税额\).*negative"),
    ]
    for change, pattern in cases:
        with pytest.raises(FieldError, match=pattern):
            lg.documents.add_invoice(**{**ok, **change})  # type: ignore[arg-type]
    with pytest.raises(FieldError, match=r"uscc"):
        lg.master.add_vendor("坏供应商", "91350100M000100Y44")
    with pytest.raises(FieldError, match=r"headcount"):
        lg.master.add_company("坏公司", USCC_OTHER, "five")  # type: ignore[arg-type]
    assert lg.documents.invoices() == []
    assert lg.verify().ok


def test_duplicates_refused_and_void_allows_reentry(lg: Ledger) -> None:
    lg.documents.add_invoice("深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    with pytest.raises(DuplicateError, match="already in the ledger"):
        lg.documents.add_invoice("影棚租赁公司", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    lg.documents.add_invoice("深度求索", "12345678", "2025-03-01", "10.00", "0.60", "10.60", code="1100251130")
    with pytest.raises(DuplicateError):
        lg.documents.add_invoice("深度求索", "12345678", "2025-03-02", "10.00", "0.60", "10.60", code="1100251130")
    with pytest.raises(DuplicateError):
        lg.master.add_vendor("同一家", USCC_DEEPSEEK)
    lg.documents.void_invoice(n20(2025, 1), reason="录入错误 wrong total")
    inv = lg.documents.add_invoice("深度求索", n20(2025, 1), "2025-03-01", "200.00", "12.00", "212.00")
    assert inv.total_fen == 21200
    live = lg.documents.invoices(2025)
    assert sorted(i.total_fen for i in live) == [1060, 21200]
    # the reversal row nets the voided invoice to zero in raw sums
    total = lg.store.conn.execute("SELECT SUM(total_fen) FROM invoices").fetchone()[0]
    assert total == 1060 + 21200
    assert lg.verify().ok


def test_payments_overpay_refused_and_flags(lg: Ledger) -> None:
    inv = lg.documents.add_invoice("关联方工作室", n20(2025, 2), "2025-04-01", "1000.00", "60.00", "1060.00", tax_rate="6%")
    assert any("related-party" in f for f in inv.flags)
    lg.documents.add_payment(n20(2025, 2), "2025-04-02", "1000.00", "B1")
    with pytest.raises(FieldError, match=r"amount \(付款金额\).*overpay"):
        lg.documents.add_payment(n20(2025, 2), "2025-04-03", "60.01", "B2")
    with pytest.raises(FieldError, match=r"bank_ref"):
        lg.documents.add_payment(n20(2025, 2), "2025-04-03", "1.00", "  ")
    lg.documents.add_payment(n20(2025, 2), "2025-04-03", "60.00", "B2")
    odd = lg.documents.add_invoice("深度求索", n20(2025, 3), "2025-04-01", "1000.00", "50.00", "1050.00", tax_rate="6%")
    assert any("does not match" in f for f in odd.flags)
    lg.master.set_setting("window_end", "2025-06-30")
    late = lg.documents.add_invoice("深度求索", n20(2025, 4), "2025-07-01", "1.00", "0.06", "1.06")
    assert any("policy window" in f for f in late.flags)


# --- price book and usage ---------------------------------------------------------------------
def test_price_book_rules(tmp_path: Path) -> None:
    book = PriceBook([
        PriceEntry("*", "cpu_second", Decimal("0")),
        PriceEntry("llm", "input_token", Decimal("1.00"), per=1_000_000, id=1),
        PriceEntry("m", "input_token", Decimal("2.00"), per=1_000_000, valid_from=date(2025, 1, 1), id=2),
        PriceEntry("m", "input_token", Decimal("4.00"), per=1_000_000, valid_from=date(2025, 9, 1), id=3),
        PriceEntry("m", "output_token", Decimal("8"), per=1_000_000, valid_from=date(2025, 1, 1),
                   valid_to=date(2025, 1, 31), id=4),
    ])
    assert book.lookup("m", "llm", "input_token", date(2025, 3, 1)).price == 2  # type: ignore[union-attr]
    assert book.lookup("m", "llm", "input_token", date(2025, 9, 1)).price == 4  # type: ignore[union-attr]
    assert book.lookup("m", "llm", "input_token", date(2024, 12, 31)).price == 1  # type: ignore[union-attr]
    assert book.lookup("x", "y", "cpu_second", date(2025, 1, 1)).price == 0  # type: ignore[union-attr]
    assert book.lookup("m", "llm", "output_token", date(2025, 2, 1)) is None
    entry = book.lookup("m", "llm", "input_token", date(2025, 3, 1))
    assert entry is not None and entry.amount_micro(Decimal(1_234_567)) == 2_469_134
    bad = tmp_path / "bad.toml"
    bad.write_text('[[price]]\nmodel = "m"\nunit = "input_token"\nprice = 2.0\n', encoding="utf-8")
    with pytest.raises(FieldError, match="strings"):
        load_price_toml(bad)
    bad.write_text('[[price]]\nmodel = "m"\nunit = "input_token"\nprice = "2"\ncurrency = "USD"\n', encoding="utf-8")
    with pytest.raises(FieldError, match="CNY"):
        load_price_toml(bad)
    shipped = load_price_toml(ROOT / "ledger" / "prices.toml")
    assert shipped and all(e.currency == "CNY" for e in shipped)
    assert all(e.example for e in shipped if e.unit.endswith("_token")), "token prices must be marked example"


def _usage_project(tmp_path: Path, name: str = "逆袭之路") -> Path:
    folder = tmp_path / name
    with UsageStore(folder / "usage.sqlite") as store:
        run = store.start_run("reelforge script", run_id="run-1")
        store.add(run, [
            UsageRecord("script", "llm", "input_token", Decimal(1_234_567), model="deepseek-chat",
                        vendor="deepseek", event_id="e1"),
            UsageRecord("script", "llm", "output_token", Decimal(100_000), model="deepseek-chat",
                        vendor="deepseek", event_id="e2"),
            UsageRecord("synth", "espeak-ng", "cpu_second", Decimal("12.345"), event_id="e3"),
        ])
    return folder


def test_import_usage_is_idempotent_and_priced_exactly(lg: Ledger, tmp_path: Path) -> None:
    folder = _usage_project(tmp_path)
    r = lg.usage.import_project(folder)
    assert (r.imported, r.skipped, r.unpriced) == (3, 0, 0)
    assert r.prices_loaded > 0  # the empty ledger loaded the shipped price book
    # deepseek-chat example prices: ¥2/M input, ¥8/M output
    assert r.estimated_micro == 2_469_134 + 800_000
    assert r.example_priced == 2
    again = lg.usage.import_project(folder)
    assert (again.imported, again.skipped) == (0, 3)
    rows = lg.store.query("SELECT run_id, event_id, unit_price, price_per, amount_micro FROM usage_events ORDER BY id")
    assert [(x["run_id"], x["event_id"]) for x in rows] == [("run-1", "e1"), ("run-1", "e2"), ("run-1", "e3")]
    assert rows[0]["unit_price"] == "2.00" and rows[0]["price_per"] == 1_000_000
    with UsageStore(folder / "usage.sqlite") as store:
        store.add("run-1", [UsageRecord("script", "llm", "input_token", Decimal(10), model="mystery-model",
                                        event_id="e4")])
    with pytest.raises(LedgerError, match="mystery-model"):
        lg.usage.import_project(folder)
    r3 = lg.usage.import_project(folder, allow_unpriced=True)
    assert (r3.imported, r3.unpriced, r3.skipped) == (1, 1, 3)
    recon = lg.recon.reconcile(date.today().year)
    ds = [x for x in recon if x.vendor_label == "深度求索"]
    assert ds and sum(x.estimated_micro for x in ds) == 3_269_134
    assert lg.verify().ok


# --- claims -----------------------------------------------------------------------------------
def test_measure5_rate_rounding_and_year_base(lg: Ledger) -> None:
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
    paid_invoice(lg, "深度求索", n20(2025, 2), "2025-05-01", "333.33", "20.00", "353.33")
    paid_invoice(lg, "深度求索", n20(2024, 3), "2024-12-31", "500.00", "30.00", "530.00")  # another year
    lg.documents.add_invoice("深度求索", n20(2025, 4), "2025-06-01", "700.00", "42.00", "742.00")  # unpaid
    paid_invoice(lg, "关联方工作室", n20(2025, 5), "2025-06-02", "800.00", "48.00", "848.00")  # related party
    paid_invoice(lg, "影棚租赁公司", n20(2025, 6), "2025-06-03", "900.00", "54.00", "954.00", category="shooting")
    r = lg.claims.compute(5, 2025)
    assert r.base_fen == 133333
    assert r.raw == Decimal("39999.90")
    assert r.claim_fen == 39999  # rounded down to the fen
    assert r.rate == "0.30" and not r.opc
    reasons = {e.invoice.number: " ".join(e.reasons) for e in r.excluded}
    assert "no payment" in reasons[n20(2025, 4)] and "related-party" in reasons[n20(2025, 5)]
    assert {v.number for v in r.not_applicable} == {n20(2025, 6)}
    lg.master.set_setting("rounding", "half_up")
    assert lg.claims.compute(5, 2025).claim_fen == 40000
    lg.master.set_setting("basis", "tax_inclusive")
    assert lg.claims.compute(5, 2025).base_fen == 106000 + 35333
    lg.master.set_setting("related_party", "include_flagged")
    lg.master.set_setting("unpaid", "include_flagged")
    r2 = lg.claims.compute(5, 2025)
    assert r2.base_fen == 106000 + 35333 + 74200 + 84800
    assert any("related-party" in f for ln in r2.lines for f in ln.flags)
    with pytest.raises(PolicyError, match="2028-12-31"):
        lg.claims.compute(5, 2029)


def test_partial_payment_counts_the_paid_share(lg: Ledger) -> None:
    lg.documents.add_invoice("深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
    lg.documents.add_payment(n20(2025, 1), "2025-03-02", "353.33", "B1")
    r = lg.claims.compute(5, 2025)
    # 100000 fen x 35333 / 106000 = 33333.01... -> 33333 fen counted
    assert r.base_fen == 33333
    assert "partly paid" in r.lines[0].flags[0]


def test_opc_rate_cap_and_cap_over_the_window(lg: Ledger) -> None:
    lg.master.update_company(None, headcount=4, evidence_date="2025-01-02")  # from 2025 on
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "800000.00", "48000.00", "848000.00")
    paid_invoice(lg, "深度求索", n20(2026, 2), "2026-03-01", "600000.00", "36000.00", "636000.00")
    r25 = lg.claims.record(5, 2025)
    assert r25.opc and r25.rate == "0.50" and r25.claim_fen == 40_000_000  # ¥400,000
    r26 = lg.claims.compute(5, 2026)
    assert r26.rounded_fen == 30_000_000
    assert r26.cap_fen == 50_000_000 and r26.cap_used_fen == 40_000_000 and r26.cap_used_by == [r25.claim_id]
    assert r26.claim_fen == 10_000_000  # what is left of the ¥500,000 OPC cap
    lg.master.set_setting("m5_cap_scope", "year")
    assert lg.claims.compute(5, 2026).claim_fen == 30_000_000


def test_measure6_yizhuang_bonus_modes_and_eligibility(lg: Ledger) -> None:
    m6_ready(lg, "逆袭之路", "亦庄星光")
    paid_invoice(lg, "影棚租赁公司", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00",
                 category="shooting", project="逆袭之路")
    paid_invoice(lg, "影棚租赁公司", n20(2025, 2), "2025-03-02", "1000.00", "60.00", "1060.00",
                 category="set_equipment", project="亦庄星光")
    paid_invoice(lg, "影棚租赁公司", n20(2025, 3), "2025-03-03", "1000.00", "60.00", "1060.00",
                 category="scene", project="宣传片")  # not a web-literature conversion
    paid_invoice(lg, "影棚租赁公司", n20(2025, 4), "2025-03-04", "1000.00", "60.00", "1060.00",
                 category="ip_rights")  # no project
    r = lg.claims.compute(6, 2025)
    assert r.base_fen == 200000
    assert r.raw == Decimal("30000.00") + Decimal("36000.00")  # 30 % and 30 % x 1.2
    assert r.rate == "mixed" and [(str(a), b) for a, b in r.rate_breakdown] == [("0.30", 100000), ("0.3600", 100000)]
    why = {e.invoice.number: " ".join(e.reasons) for e in r.excluded}
    assert "work type" in why[n20(2025, 3)] and "no project" in why[n20(2025, 4)]
    lg.master.set_setting("m6_bonus_mode", "rate_points")
    assert lg.claims.compute(6, 2025).raw == Decimal("30000.00") + Decimal("50000.00")
    assert lg.claims.compute(6, 2025, project="亦庄星光").rate == "0.50"
    with pytest.raises(PolicyError, match="亦庄"):  # the bonus must not raise the whole company's cap
        lg.master.set_setting("m6_bonus_mode", "cap_raised")
    paid_invoice(lg, "影棚租赁公司", n20(2025, 9), "2025-04-01", "5000000.00", "300000.00", "5300000.00",
                 category="shooting", project="亦庄星光")
    lg.master.set_setting("m6_bonus_mode", "rate_multiplied")
    assert lg.claims.compute(6, 2025).claim_fen == 100_000_000  # ¥1,000,000 per converter per year


def test_no_document_in_two_active_claims_and_the_better_measure(lg: Ledger) -> None:
    m6_ready(lg, "逆袭之路")
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00", project="逆袭之路")
    paid_invoice(lg, "影棚租赁公司", n20(2025, 2), "2025-04-01", "1000.00", "60.00", "1060.00",
                 category="shooting", project="逆袭之路")
    paid_invoice(lg, "深度求索", n20(2025, 3), "2025-05-01", "2000.00", "120.00", "2120.00")
    plan = lg.claims.plan_best(2025)
    # 逆袭之路 fits both measures: measure 6 (1000 x 30 % = 300) beats measure 5 (100 x 30 % = 30)
    assert plan.total_fen == 60000 + 30000
    assert {c.measure: c.claim_fen for c in plan.claims} == {5: 60000, 6: 30000}
    single = lg.claims.compute(5, 2025, project="逆袭之路")
    assert single.comparison and single.comparison["recommended_measure"] == 6
    recorded = lg.claims.record_plan(plan)
    assert [c.status for c in recorded] == ["recorded", "recorded"]
    m5 = next(c for c in recorded if c.measure == 5)
    m6 = next(c for c in recorded if c.measure == 6)
    with pytest.raises(ClaimConflictError, match="already active"):
        lg.claims.record(5, 2025)
    # the project is held by the measure 6 claim: never both (从优不重复)
    with pytest.raises(ClaimConflictError, match="never sits in two active claims"):
        lg.claims.record(5, 2025, project="逆袭之路")
    lines = lg.store.query("SELECT invoice_id, COUNT(*) AS n FROM claim_lines GROUP BY invoice_id")
    assert all(x["n"] == 1 for x in lines)
    with pytest.raises(ClaimConflictError, match="withdraw"):
        lg.documents.void_invoice(n20(2025, 3), reason="test")
    lg.claims.withdraw(m6.claim_id, reason="按措施5重新申报")  # type: ignore[arg-type]
    lg.claims.withdraw(m5.claim_id, reason="重新申报")  # type: ignore[arg-type]
    again = lg.claims.record(5, 2025)
    assert again.claim_fen == 63000
    assert [c.active for c in lg.claims.recorded(2025)] == [False, False, True]
    assert lg.verify().ok


# --- chain ------------------------------------------------------------------------------------
def _copy(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest


def test_append_only_triggers_and_tamper_detection(lg: Ledger, tmp_path: Path) -> None:
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    paid_invoice(lg, "深度求索", n20(2025, 2), "2025-03-02", "200.00", "12.00", "212.00")
    lg.master.set_setting("rounding", "half_up")
    report = lg.verify()
    assert report.ok and report.rows > 10
    head = report.head.hash
    raw = sqlite3.connect(lg.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE invoices SET total_fen = 1 WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM payments WHERE id = 1")
    backup = tmp_path / "backup.sqlite"
    lg.store.conn.execute(f"VACUUM INTO '{backup}'")

    # 1. someone drops the trigger and edits an amount
    raw.execute("DROP TRIGGER invoices_append_only_update")
    raw.execute("UPDATE invoices SET ex_tax_fen = 9000, total_fen = 9600 WHERE id = 1")
    raw.commit()
    bad = lg.verify()
    assert not bad.ok
    first = bad.first_broken
    assert first is not None and (first.table, first.id) == ("invoices", None)  # the missing trigger comes first
    content = [p for p in bad.problems if p.table == "invoices" and p.id == 1]
    assert content and "edited outside the ledger" in content[0].what
    assert lg.claims.compute(5, 2025).base_fen == 29000  # the edit is real; verify is what catches it

    # 2. a row deleted from the middle, with the trigger out of the way
    lg2 = Ledger(_copy(backup, tmp_path / "case2.sqlite"))
    raw2 = sqlite3.connect(lg2.path)
    raw2.execute("DROP TRIGGER payments_append_only_delete")
    raw2.execute("DELETE FROM payments WHERE id = 1")
    raw2.execute(schema.trigger_sql("payments")["payments_append_only_delete"])  # put back exactly as it was
    raw2.commit()
    gap = lg2.verify()
    assert not gap.ok and "missing" in gap.first_broken.what  # type: ignore[union-attr]

    # 3. a row edited and its own hash recomputed: the next link no longer joins
    lg3 = Ledger(_copy(backup, tmp_path / "case3.sqlite"))
    from ledger.chain import row_hash

    raw3 = sqlite3.connect(lg3.path)
    cols = schema.columns("invoices")
    row = dict(zip(cols, raw3.execute(f"SELECT {', '.join(cols)} FROM invoices WHERE id = 2").fetchone(),
                   strict=True))
    row.update(ex_tax_fen=100, tax_fen=6, total_fen=106)
    content3 = {k: row[k] for k in cols[:-2]}
    raw3.execute("DROP TRIGGER invoices_append_only_update")
    raw3.execute("UPDATE invoices SET ex_tax_fen = 100, tax_fen = 6, total_fen = 106, row_hash = ? WHERE id = 2",
                 (row_hash(row["prev_hash"], "invoices", content3),))
    raw3.execute(schema.trigger_sql("invoices")["invoices_append_only_update"])
    raw3.commit()
    relinked = lg3.verify()
    assert not relinked.ok
    assert "link broken" in relinked.first_broken.what  # type: ignore[union-attr]
    assert relinked.first_broken.seq == row["seq"] + 1  # type: ignore[union-attr]

    # 4. the tail cut off: only the head printed on an export reveals it
    lg4 = Ledger(_copy(backup, tmp_path / "case4.sqlite"))
    assert lg4.verify(expect_head=head).ok
    raw4 = sqlite3.connect(lg4.path)
    cut_from = raw4.execute("SELECT MIN(seq) FROM settings").fetchone()[0]
    for table in ("settings", "audit_log"):  # the setting and its audit entry are the newest rows
        raw4.execute(f"DROP TRIGGER {table}_append_only_delete")
        raw4.execute(f"DELETE FROM {table} WHERE seq >= ?", (cut_from,))
        raw4.execute(schema.trigger_sql(table)[f"{table}_append_only_delete"])
    raw4.commit()
    assert lg4.verify().ok  # a clean cut of the newest rows is consistent on its own ...
    cut = lg4.verify(expect_head=head)
    assert not cut.ok and "expected head" in str(cut.first_broken)  # ... but not with the old head


def test_archived_file_tampering_is_detected(lg: Ledger, tmp_path: Path) -> None:
    doc = tmp_path / "fapiao.pdf"
    doc.write_bytes(b"%PDF-1.4 invoice")
    lg.documents.add_invoice("深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00", file=doc)
    f = lg.documents.file(1)
    stored = lg.archive_dir / f.stored_name
    assert stored.read_bytes() == doc.read_bytes() and f.sha256 == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert lg.verify().files_checked == 1
    stored.chmod(0o644)
    stored.write_bytes(b"%PDF-1.4 forged")
    bad = lg.verify()
    assert not bad.ok and "altered" in bad.first_broken.what  # type: ignore[union-attr]
    with pytest.raises(LedgerError, match="web"):
        Ledger(tmp_path / "public" / "l.sqlite")


# --- exports ----------------------------------------------------------------------------------
def test_export_totals_match_the_ledger(lg: Ledger, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    if not have_cjk_font():
        pytest.skip("no TrueType CJK font for the PDF (apt-get install fonts-wqy-microhei)")
    docs = tmp_path / "docs"
    docs.mkdir()
    amounts = [("1234.56", "74.07", "1308.63"), ("99999.99", "6000.00", "105999.99"), ("0.01", "0.00", "0.01")]
    for i, (ex, tax, total) in enumerate(amounts, 1):
        f = docs / f"inv{i}.pdf"
        f.write_bytes(f"invoice {i}".encode())
        lg.documents.add_invoice("深度求索", n20(2025, i), f"2025-0{i}-10", ex, tax, total, file=f, project="逆袭之路")
        receipt = docs / f"bank{i}.pdf"
        receipt.write_bytes(f"receipt {i}".encode())
        lg.documents.add_payment(n20(2025, i), f"2025-0{i}-11", total, f"BANK{i:04d}", file=receipt)
    lg.documents.add_invoice("深度求索", n20(2025, 9), "2025-09-09", "10.00", "0.60", "10.60")  # unpaid: excluded
    folder = _usage_project(tmp_path)
    src = sqlite3.connect(folder / "usage.sqlite")  # the project's own file: date its events in 2025
    src.execute("UPDATE usage_events SET created_at = '2025-06-30T17:00:00.000+00:00'")  # 2025-07-01 in China
    src.commit()
    src.close()
    lg.usage.import_project(folder)
    recorded = lg.claims.record(5, 2025)
    out = tmp_path / "export"
    result = export_claim_package(lg, 2025, out, measure="5")
    head = result.chain_head
    assert result.claims[0].claim_id == recorded.claim_id

    wb = openpyxl.load_workbook(result.xlsx)
    assert wb.sheetnames == ["费用明细表", "发票清单", "付款清单", "用量明细", "用量对账", "汇总"]
    ws = wb["费用明细表"]
    headers = [c.value for c in ws[1]]
    assert headers == ["序号", "费用类别", "项目/用途", "供应商名称", "供应商统一社会信用代码", "合同编号", "发票类型",
                       "发票代码", "发票号码", "开票日期", "金额(不含税)", "税率", "税额", "价税合计", "付款日期",
                       "付款金额", "银行流水号", "本次申报金额", "适用措施", "备注"]
    col = {h: i for i, h in enumerate(headers)}
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
    data = [r for r in rows if isinstance(r[0], int)]
    total_row = next(r for r in rows if r[0] == "合计")

    def fen(v: object) -> int:
        return int(Decimal(str(v)) * 100)

    db = lg.store.conn.execute(
        "SELECT SUM(i.ex_tax_fen), SUM(i.tax_fen), SUM(i.total_fen), SUM(l.base_fen) FROM claim_lines l "
        "JOIN invoices i ON i.id = l.invoice_id WHERE l.claim_id = ?", (recorded.claim_id,)).fetchone()
    assert len(data) == 3
    assert sum(fen(r[col["金额(不含税)"]]) for r in data) == db[0] == fen(total_row[col["金额(不含税)"]])
    assert fen(total_row[col["税额"]]) == db[1]
    assert fen(total_row[col["价税合计"]]) == db[2] == 10730863
    assert fen(total_row[col["本次申报金额"]]) == db[3] == recorded.base_fen
    assert to_capital(db[3]) in total_row[col["备注"]]
    assert {r[col["发票号码"]] for r in data} == {n20(2025, i) for i in (1, 2, 3)}
    money_cell = ws.cell(row=2, column=col["价税合计"] + 1)
    assert "¥" in money_cell.number_format
    summary = {r[0].value: r[1].value for r in wb["汇总"].iter_rows(min_row=2) if r[0].value}
    assert summary["账簿链头 chain head"] == head
    assert fen(summary["措施5 本次申报补贴金额"]) == recorded.claim_fen == 3037036  # 30 % of 101,234.56 = 30,370.368, down
    assert summary["措施5 金额大写"] == to_capital(recorded.claim_fen)
    inv_rows = [[c.value for c in r] for r in wb["发票清单"].iter_rows(min_row=2)]
    unpaid = next(r for r in inv_rows if r[8] == n20(2025, 9))
    assert unpaid[15].startswith("不计入") and "no payment" in unpaid[17]
    pay_total = next(r for r in wb["付款清单"].iter_rows(min_row=2, values_only=True) if r[0] == "合计")
    assert fen(pay_total[7]) == 10730863

    # CSVs: UTF-8 with BOM, same numbers
    detail_csv = out / "2025_费用明细表.csv"
    raw = detail_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    csv_rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert csv_rows[0] == headers
    assert next(r for r in csv_rows if r[0] == "合计")[col["价税合计"]] == "107308.63"
    assert len(result.csvs) == 6

    # PDF: a real PDF with an embedded CJK font; page numbers and the head when pdftotext is here
    pdf = result.pdf.read_bytes()
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(result.pdf), "-"], capture_output=True, text=True).stdout
        flat = text.replace(" ", "")
        assert head in text and "第1页/共" in flat and "影锻文化传媒有限公司" in text

    # evidence ZIP: every archived document, and a manifest whose sha256s match
    with zipfile.ZipFile(result.evidence_zip) as zf:
        names = zf.namelist()
        assert sum(1 for n in names if n.startswith("documents/invoices/")) == 3
        assert sum(1 for n in names if n.startswith("documents/payments/")) == 3
        sums = [line.split("  ", 1) for line in zf.read("SHA256SUMS").decode().splitlines()]
        assert len(sums) >= 6 + 9
        for digest, name in sums:
            assert hashlib.sha256(zf.read(name)).hexdigest() == digest
        assert head in zf.read("manifest.csv").decode("utf-8-sig")
        usage_csv = list(csv.reader(io.StringIO(zf.read("usage/usage_events_2025.csv").decode("utf-8-sig"))))
        assert len(usage_csv) == 1 + 3 and {r[1] for r in usage_csv[1:]} == {"2025-07-01"}
    usage_rows = [r for r in wb["用量明细"].iter_rows(min_row=2, values_only=True) if r[0] is not None]
    usage_total = next(r for r in usage_rows if r[0] == "合计")
    micro = lg.store.conn.execute("SELECT SUM(amount_micro) FROM usage_events").fetchone()[0]
    assert micro == 3_269_134 and Decimal(str(usage_total[13])) * 1_000_000 == micro
    assert usage_total[12] == 3
    audit = lg.audit(1)[0]
    assert audit["action"] == "export" and audit["detail"]["chain_head"] == head
    assert lg.verify(expect_head=head).ok


# --- CLI --------------------------------------------------------------------------------------
def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.sqlite")

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_main(["--db", db, *argv])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    assert run("company", "add", "--name", "影锻", "--uscc", USCC_STUDIO, "--headcount", "3")[0] == 0
    assert run("vendor", "add", "--name", "深度求索", "--uscc", USCC_DEEPSEEK)[0] == 0
    code, _, err = run("vendor", "add", "--name", "坏", "--uscc", "91350100M000100Y44")
    assert code == 2 and "uscc" in err
    code, out, _ = run("invoice", "add", "--vendor", "深度求索", "--number", n20(2025, 1), "--date", "2025-03-01",
                       "--ex-tax", "100.00", "--tax", "6.00", "--total", "106.00")
    assert code == 0 and "106.00" in out
    code, _, err = run("invoice", "add", "--vendor", USCC_DEEPSEEK, "--number", n20(2025, 2), "--date",
                       "2025-03-01", "--ex-tax", "100.00", "--tax", "6.00", "--total", "107.00")
    assert code == 2 and "total" in err and "价税合计" in err
    code, _, err = run("invoice", "add", "--vendor", "深度求索", "--number", n20(2025, 1), "--date", "2025-03-01",
                       "--ex-tax", "100.00", "--tax", "6.00", "--total", "106.00")
    assert code == 2 and "already" in err
    assert run("payment", "add", "--invoice", n20(2025, 1), "--date", "2025-03-05", "--amount", "106.00",
               "--bank-ref", "B1")[0] == 0
    code, out, _ = run("claim", "--measure", "5", "--year", "2025", "--json")
    obj = json.loads(out)
    assert code == 0
    for key in ("measure", "year", "basis", "base_fen", "rate", "cap_fen", "claim_fen", "chain_head"):
        assert key in obj
    assert (obj["measure"], obj["year"], obj["basis"], obj["base_fen"], obj["rate"], obj["cap_fen"],
            obj["claim_fen"]) == (5, 2025, "ex_tax", 10000, "0.50", 50_000_000, 5000)
    code, out, _ = run("verify")
    assert code == 0 and obj["chain_head"] in out
    if have_cjk_font():
        code, out, _ = run("export", "--year", "2025", "--out", str(tmp_path / "out"))
        assert code == 0 and obj["chain_head"] in out and "2025_claim.xlsx" in out
    code, _, err = run("claim", "--measure", "6", "--year", "2031")
    assert code == 2 and "policy window" in err
    code, out, _ = run("settings", "set", "basis", "tax_inclusive")
    assert code == 0
    code, _, err = run("settings", "set", "rounding", "sideways")
    assert code == 2
    raw = sqlite3.connect(db)
    raw.execute("DROP TRIGGER invoices_append_only_update")
    raw.execute("UPDATE invoices SET note = 'x' WHERE id = 1")
    raw.commit()
    code, _, err = run("verify")
    assert code == 1 and "invoices id=1" in err


def test_python_dash_m_ledger_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ledger", "--db", str(tmp_path / "x.sqlite"), "company", "add",
                           "--name", "N", "--uscc", "123", "--headcount", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "uscc" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ledger", "--db", str(tmp_path / "x.sqlite"), "verify"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_csv_imports_are_all_or_nothing(lg: Ledger, tmp_path: Path) -> None:
    good = tmp_path / "inv.csv"
    good.write_text("供应商名称,发票号码,开票日期,金额(不含税),税额,价税合计,费用类别\n"
                    f"深度求索,{n20(2025, 1)},2025-03-01,100.00,6.00,106.00,ai_tech\n"
                    f"影棚租赁公司,{n20(2025, 2)},2025-03-02,200.00,12.00,212.00,拍摄\n", encoding="utf-8-sig")
    # rename the first column to the English key the importer also accepts
    text = good.read_text(encoding="utf-8-sig").replace("供应商名称", "vendor", 1)
    good.write_text(text, encoding="utf-8-sig")
    assert import_invoices(lg, good) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("vendor,number,date,ex_tax,tax,total\n"
                   f"深度求索,{n20(2025, 3)},2025-03-01,100.00,6.00,106.00\n"
                   f"深度求索,{n20(2025, 4)},2025-03-01,100.00,6.00,999.00\n", encoding="utf-8")
    with pytest.raises(FieldError, match=r"bad.csv row 3: total"):
        import_invoices(lg, bad)
    assert len(lg.documents.invoices()) == 2  # the good first row of the bad file is not in either
    pays = tmp_path / "pay.csv"
    pays.write_text("发票号码,付款日期,付款金额,银行流水号\n"
                    f"{n20(2025, 1)},2025-03-05,106.00,B1\n", encoding="gb18030")
    assert import_payments(lg, pays) == 1
    assert lg.verify().ok


def test_settings_are_recorded_and_validated(lg: Ledger) -> None:
    assert lg.master.settings() == PolicySettings()
    lg.master.set_setting("m5_rate", "25%")
    lg.master.set_setting("m6_cap", "800000")
    s = lg.master.settings()
    assert s.m5_rate == Decimal("0.25") and s.m6_cap == 80_000_000
    with pytest.raises(FieldError, match="setting m6_bonus_mode"):
        lg.master.set_setting("m6_bonus_mode", "double")
    with pytest.raises(FieldError, match="setting"):
        lg.master.set_setting("no_such_key", "1")
    keys = [k for k, *_ in s.describe()]
    assert keys == list(PolicySettings.keys())
    assert lg.audit(1)[0]["action"] == "settings.set"


def test_register_mounts_the_ledger_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from ledger.cli import register

    parser = argparse.ArgumentParser(prog="reelforge")
    subs = parser.add_subparsers(dest="command", required=True)
    register(subs)
    args = parser.parse_args(["ledger", "--db", str(tmp_path / "r.sqlite"), "company", "add", "--name", "N",
                              "--uscc", USCC_STUDIO, "--headcount", "2"])
    assert args.command == "ledger" and args.func(args) == 0
    args = parser.parse_args(["ledger", "--db", str(tmp_path / "r.sqlite"), "company", "list", "--json"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    listed = json.loads(out[out.index("["):])
    assert listed[0]["name"] == "N" and listed[0]["opc"] is True


def test_china_dates_and_reconciliation_rows(lg: Ledger) -> None:
    from ledger.services.usage import china_day as _china_day

    cache: dict[str, date] = {}
    assert _china_day("2025-12-31T16:30:00.000+00:00", cache, "t") == date(2026, 1, 1)
    assert _china_day("2025-12-31T15:59:59.999+00:00", cache, "t") == date(2025, 12, 31)
    assert _china_day("2025-12-31T23:30:00+08:00", cache, "t") == date(2025, 12, 31)
    assert _china_day("2025-12-31T20:00:00", cache, "t") == date(2026, 1, 1)  # naive = UTC
    with pytest.raises(FieldError, match="created_at"):
        _china_day("yesterday", cache, "created_at")
    paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "100.00", "6.00", "106.00")
    rows = lg.recon.reconcile(2025, period="quarter", record=True)
    assert [(r.vendor_label, r.period, r.invoiced_fen) for r in rows] == [("深度求索", "2025-Q1", 10000)]
    assert lg.store.conn.execute("SELECT COUNT(*) FROM reconciliations").fetchone()[0] == 1
    assert lg.verify().ok


def test_font_lookup_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("reportlab")
    from ledger import fonts

    fake = tmp_path / "not-a-font.ttf"
    fake.write_bytes(b"not a font")
    monkeypatch.setattr(fonts, "_registered", None)
    monkeypatch.setattr(fonts, "_candidates", lambda: [(tmp_path / "missing.ttc", 0), (fake, 0)])
    with pytest.raises(LedgerError, match="no CJK font") as info:
        fonts.register_cjk_font()
    assert "missing.ttc: not installed" in str(info.value) and "not-a-font.ttf" in str(info.value)
    assert "fonts-wqy-microhei" in (info.value.hint or "")
