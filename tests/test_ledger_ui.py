from __future__ import annotations

from pathlib import Path

import pytest

USCC_STUDIO = "91350100M000100Y43"
USCC_VENDOR = "91330100716105852F"


def test_ledger_tab_builds_and_its_handlers_work(tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio")
    from ui.ledger_tab import (
        build_ledger_tab,
        on_add_company,
        on_add_invoice,
        on_add_payment,
        on_add_vendor,
        on_claim,
        on_export,
        on_list_invoices,
        on_verify,
    )

    db = str(tmp_path / "ui.sqlite")
    with gr.Blocks() as demo, gr.Tab("台账"):
        build_ledger_tab(db)
    assert demo.fns  # the buttons are wired

    assert "已添加公司" in on_add_company(db, "影锻", USCC_STUDIO, 12)
    assert "uscc" in on_add_company(db, "坏", "91350100M000100Y44", 1)
    assert "已添加供应商" in on_add_vendor(db, "深度求索", USCC_VENDOR, False, "deepseek")
    doc = tmp_path / "fapiao.pdf"
    doc.write_bytes(b"%PDF-1.4 fapiao")
    out = on_add_invoice(db, "深度求索", "25111000000000000001", "", "2025-03-01", "1000.00", "60.00", "1060.00",
                         "", "ai_tech", "", str(doc))
    assert "已添加发票" in out
    assert "total" in on_add_invoice(db, "深度求索", "25111000000000000002", "", "2025-03-01", "1000.00", "60.00",
                                     "1061.00", "", "ai_tech", "", None)
    assert "已登记付款" in on_add_payment(db, "25111000000000000001", "", "2025-03-02", "1060.00", "B1", None)
    rows, text = on_list_invoices(db, 2025)
    assert len(rows) == 1 and rows[0][8] == "1,060.00"
    md, data = on_claim(db, "5", 2025, "", False)
    assert data["claim_fen"] == 30000 and data["rate"] == "0.30" and data["chain_head"] in md
    md, data = on_claim(db, "best", 2025, "", True)
    assert data["total_claim_fen"] == 30000 and data["claims"][0]["status"] == "recorded"
    from ledger.fonts import cjk_font_available

    if cjk_font_available():
        files, text = on_export(db, 2025, "best", "")
        assert any(f.endswith(".xlsx") for f in files) and all(Path(f).exists() for f in files)
        assert "chain head" in text
    assert on_verify(db).startswith("✅")
