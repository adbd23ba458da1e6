"""Writers for the sheets: an XLSX workbook (openpyxl) and one UTF-8 (with BOM) CSV per sheet.

Text that a spreadsheet would take for a formula - a cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return - is written as text: in the XLSX as a string cell with Excel's quote
prefix, in the CSV behind a single quote (the OWASP advice for CSV injection). Money cells are
numbers of our own making and are written as they are (a red-letter amount is ``-318.00``).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.export.sheets import YUAN_FORMAT, Fen, Micro, Sheet
from ledger.money import MICRO_PER_YUAN, fen_to_decimal, format_fen

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def _cell_text(value: Any) -> str:
    if isinstance(value, Fen):
        return format_fen(value.value, grouping=False)
    if isinstance(value, Micro):
        return format(Decimal(value.value) / MICRO_PER_YUAN, "f")
    text = "" if value is None else str(value)
    return "'" + text if formula_like(text) else text


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
        ws.append(list(sheet.headers))  # our own headers: never formula-like
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
                if formula_like(v):  # text, never a live formula
                    cell.value = v
                    cell.data_type = "s"
                    cell.quotePrefix = True
                elif isinstance(v, Fen | Micro):
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
