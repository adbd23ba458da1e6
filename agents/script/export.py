"""Write a screenplay as JSON, Fountain, Markdown, DOCX (Chinese short-drama layout), CSV or XLSX.

The DOCX follows the usual layout of a Chinese short-drama script: per episode a title with the
hook, the cliffhanger and the pay point (付费卡点); per scene a header ``场次 1-2　日　外　地点``
and a ``人物：`` line; ``△`` action lines (the shot's picture); dialogue as ``角色：台词``
(``（OS）`` off-screen, ``（VO）`` inner voice) and narration as ``旁白：``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path

from core.errors import InputError, MissingDependencyError
from core.files import atomic_path, atomic_write_text
from core.screenplay import Episode, Line, Scene, Series, Shot

log = logging.getLogger(__name__)

FORMATS = ("json", "fountain", "md", "docx", "csv", "xlsx")
_SUFFIX = {".json": "json", ".fountain": "fountain", ".spmd": "fountain", ".md": "md", ".markdown": "md",
           ".docx": "docx", ".csv": "csv", ".xlsx": "xlsx"}
_TIME_ZH = {"day": "日", "night": "夜", "dawn": "晨", "dusk": "昏", "unspecified": "日"}
_TIME_EN = {"day": "DAY", "night": "NIGHT", "dawn": "DAWN", "dusk": "DUSK", "unspecified": "DAY"}
_IE_ZH = {"INT": "内", "EXT": "外", "INT/EXT": "内外"}
_SIZE_ZH = {"ELS": "大远景", "LS": "远景", "MS": "中景", "MCU": "中近景", "CU": "近景", "ECU": "特写"}
_MOVE_ZH = {"static": "固定", "push_in": "推", "pull_out": "拉", "pan_left": "左摇", "pan_right": "右摇",
            "tilt_up": "上摇", "tilt_down": "下摇", "handheld": "手持"}
SHOTLIST_COLUMNS = (
    "集", "场", "镜号", "内外景", "地点", "日夜", "景别", "运镜", "时长(秒)", "人物", "画面", "台词", "音效",
    "章", "起", "止",
)


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else from the file's suffix."""
    if fmt:
        key = fmt.lower().lstrip(".")
        if key == "markdown":
            key = "md"
        if key not in FORMATS:
            raise InputError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
        return key
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX:
        raise InputError(f"cannot tell the format of {str(path)!r} from its suffix",
                         hint="end it with .json/.fountain/.md/.docx/.csv/.xlsx or pass --format")
    return _SUFFIX[suffix]


def export(series: Series, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``series`` to ``path`` in ``fmt`` (or the format its suffix names); returns the path."""
    path = Path(path)
    kind = format_for(path, fmt)
    if kind == "json":
        return series.save(path)
    if kind == "fountain":
        _write_text(path, to_fountain(series))
    elif kind == "md":
        _write_text(path, to_markdown(series))
    elif kind == "csv":
        _write_text(path, to_shotlist_csv(series), bom=True)
    elif kind == "docx":
        to_docx(series, path)
    elif kind == "xlsx":
        to_shotlist_xlsx(series, path)
    log.info("wrote %s (%s)", path, kind)
    return path


def _write_text(path: Path, text: str, *, bom: bool = False) -> None:
    # a BOM makes Excel open a UTF-8 CSV as UTF-8 instead of the local code page
    atomic_write_text(path, ("\ufeff" if bom else "") + text)


def _speaker_label(line: Line) -> str:
    if line.kind == "narration":
        return "旁白"
    tag = {"os": "（OS）", "vo": "（VO）"}.get(str(line.kind), "")
    return f"{line.speaker or '旁白'}{tag}"


def _scene_header(ep: Episode, n: int, sc: Scene) -> str:
    return f"{ep.number}-{n}　{_TIME_ZH.get(sc.time_of_day, '日')}　{_IE_ZH.get(sc.int_ext, '内')}　{sc.place or '未知地点'}"


def _iter_scenes(series: Series) -> Iterator[tuple[Episode, int, Scene]]:
    for ep in series.episodes:
        for n, sc in enumerate(ep.scenes, start=1):
            yield ep, n, sc


# --- Fountain ---------------------------------------------------------------------------------


def to_fountain(series: Series) -> str:
    """Fountain (https://fountain.io): character cues forced with ``@`` since Chinese has no case."""
    out = [f"Title: {series.title}", "Credit: 改编", f"Source: {series.source.path or '原创'}",
           f"Notes: {series.logline}", ""]
    for ep in series.episodes:
        out += ["===", "", f"# 第{ep.number}集 {ep.title}".rstrip(), ""]
        if ep.hook:
            out += [f"[[开场钩子：{ep.hook}]]", ""]
        for n, sc in enumerate(ep.scenes, start=1):
            place = sc.place or "未知地点"
            ie = "INT./EXT." if sc.int_ext == "INT/EXT" else f"{sc.int_ext}."
            out += [f"{ie} {place} - {_TIME_EN.get(sc.time_of_day, 'DAY')} #{ep.number}-{n}#", ""]
            if sc.characters:
                out += [f"[[人物：{'、'.join(sc.characters)}]]", ""]
            for shot in sc.shots:
                out += [f"!{shot.visual_prompt or _SIZE_ZH.get(str(shot.size), '')}",
                        f"[[{shot.id} {_SIZE_ZH.get(str(shot.size), shot.size)} {_MOVE_ZH.get(str(shot.camera), shot.camera)}"
                        f" {shot.seconds:.1f}s{' 音效：' + '、'.join(shot.sfx) if shot.sfx else ''}]]", ""]
                for line in shot.lines:
                    if line.kind == "narration":
                        out += ["@旁白 (V.O.)", line.text, ""]
                    else:
                        ext = {"os": " (O.S.)", "vo": " (V.O.)"}.get(str(line.kind), "")
                        out += [f"@{line.speaker or '旁白'}{ext}"]
                        if line.emotion:
                            out += [f"({line.emotion})"]
                        out += [line.text, ""]
        if ep.cliffhanger:
            out += [f"[[结尾悬念：{ep.cliffhanger}]]", ""]
        if ep.paywall:
            out += ["> 【付费卡点】 <", ""]
    return "\n".join(out).rstrip() + "\n"


# --- Markdown ---------------------------------------------------------------------------------


def to_markdown(series: Series) -> str:
    out = [f"# {series.title}", ""]
    if series.logline:
        out += [f"**一句话梗概**：{series.logline}", ""]
    if series.genre:
        out += [f"**类型**：{series.genre}", ""]
    if series.characters:
        out += ["## 人物", "", "| 角色 | 别名 | 定位 | 外形 | 声音 |", "|---|---|---|---|---|"]
        for c in series.characters:
            out.append(f"| {c.name} | {'、'.join(c.aliases)} | {c.role} | {_md_cell(c.appearance)} | {c.voice} |")
        out.append("")
    for ep in series.episodes:
        total = sum(s.seconds for s in ep.shots())
        out += [f"## 第{ep.number}集 {ep.title}".rstrip(), "",
                f"目标时长 {ep.target_seconds:g} 秒，预计 {total:.0f} 秒" + ("，**付费卡点**" if ep.paywall else ""), ""]
        if ep.hook:
            out += [f"> 开场钩子：{ep.hook}", ""]
        for n, sc in enumerate(ep.scenes, start=1):
            out += [f"### {_scene_header(ep, n, sc)}", ""]
            if sc.characters:
                out += [f"人物：{'、'.join(sc.characters)}", ""]
            for shot in sc.shots:
                size = _SIZE_ZH.get(str(shot.size), str(shot.size))
                move = _MOVE_ZH.get(str(shot.camera), str(shot.camera))
                out.append(f"- △ `{shot.id}` {size}·{move}·{shot.seconds:.1f}秒：{shot.visual_prompt}"
                           + (f"（音效：{'、'.join(shot.sfx)}）" if shot.sfx else ""))
                for line in shot.lines:
                    emo = f"（{line.emotion}）" if line.emotion and line.kind != "narration" else ""
                    out.append(f"  - **{_speaker_label(line)}**{emo}：{line.text}")
            out.append("")
        if ep.cliffhanger:
            out += [f"> 结尾悬念：{ep.cliffhanger}", ""]
        if ep.paywall:
            out += ["**【付费卡点】**", ""]
    return "\n".join(out).rstrip() + "\n"


def _md_cell(s: str) -> str:
    return s.replace("|", "｜").replace("\n", " ")[:60]


# --- shot list ---------------------------------------------------------------------------------


def shot_rows(series: Series) -> Iterator[list[str | float | int]]:
    for ep, n, sc in _iter_scenes(series):
        for k, shot in enumerate(sc.shots, start=1):
            yield _shot_row(ep, n, k, sc, shot)


def _shot_row(ep: Episode, n: int, k: int, sc: Scene, shot: Shot) -> list[str | float | int]:
    lines = " / ".join(f"{_speaker_label(ln)}：{ln.text}" for ln in shot.lines)
    src = shot.source
    return [ep.number, f"{ep.number}-{n}", shot.id, _IE_ZH.get(sc.int_ext, sc.int_ext), sc.place,
            _TIME_ZH.get(sc.time_of_day, "日"), _SIZE_ZH.get(str(shot.size), str(shot.size)),
            _MOVE_ZH.get(str(shot.camera), str(shot.camera)), round(shot.seconds, 2), "、".join(shot.characters),
            shot.visual_prompt, lines, "、".join(shot.sfx),
            src.chapter if src else "", src.start if src else "", src.end if src else ""]


def to_shotlist_csv(series: Series) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(SHOTLIST_COLUMNS)
    for row in shot_rows(series):
        writer.writerow(row)
    return buf.getvalue()


def to_shotlist_xlsx(series: Series, path: str | Path) -> Path:
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font, PatternFill
    except ImportError as e:  # pragma: no cover - openpyxl ships with the office extra
        raise MissingDependencyError("openpyxl", "office") from e
    wb = Workbook()
    ws = wb.active
    ws.title = "分镜表"
    ws.append(list(SHOTLIST_COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for row in shot_rows(series):
        ws.append(row)
    widths = {"A": 5, "B": 7, "C": 12, "D": 6, "E": 14, "F": 5, "G": 8, "H": 6, "I": 8, "J": 16, "K": 40, "L": 60,
              "M": 14}
    for col, w in widths.items():
        ws.column_dimensions[col].width = w
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    people = wb.create_sheet("人物")
    people.append(["角色", "别名", "定位", "出场次数", "外形", "简介", "声音"])
    for cell in people[1]:
        cell.font = Font(bold=True)
    for c in series.characters:
        people.append([c.name, "、".join(c.aliases), c.role, c.mentions, c.appearance, c.description, c.voice])
    eps = wb.create_sheet("分集")
    eps.append(["集", "标题", "目标时长", "预计时长", "开场钩子", "结尾悬念", "付费卡点"])
    for cell in eps[1]:
        cell.font = Font(bold=True)
    for ep in series.episodes:
        eps.append([ep.number, ep.title, ep.target_seconds, round(sum(s.seconds for s in ep.shots()), 1), ep.hook,
                    ep.cliffhanger, "是" if ep.paywall else ""])
    path = Path(path)
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path


# --- DOCX ----------------------------------------------------------------------------------------


def to_docx(series: Series, path: str | Path) -> Path:
    try:
        from docx import Document
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.oxml.ns import qn
        from docx.shared import Pt
    except ImportError as e:  # pragma: no cover - python-docx ships with the office extra
        raise MissingDependencyError("python-docx", "office") from e
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "SimSun"
    style.font.size = Pt(11)
    rpr = style.element.get_or_add_rPr()
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(rfonts)
    rfonts.set(qn("w:eastAsia"), "宋体")  # Chinese text in 宋体 whatever Word's locale
    doc.core_properties.title = series.title
    title = doc.add_heading(f"《{series.title}》剧本", level=0)
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    if series.logline:
        doc.add_paragraph(f"一句话梗概：{series.logline}")
    if series.genre:
        doc.add_paragraph(f"类型：{series.genre}　　集数：{len(series.episodes)}")
    if series.characters:
        doc.add_heading("人物小传", level=1)
        for c in series.characters:
            if c.role == "extra":
                continue
            p = doc.add_paragraph()
            p.add_run(c.name).bold = True
            extra = []
            if c.aliases:
                extra.append(f"又称{'、'.join(c.aliases)}")
            if c.appearance:
                extra.append(c.appearance)
            if extra:
                p.add_run("：" + "；".join(extra))
    for ep in series.episodes:
        doc.add_page_break()
        doc.add_heading(f"第{ep.number}集　{ep.title}".rstrip(), level=1)
        if ep.hook:
            doc.add_paragraph(f"【开场钩子】{ep.hook}")
        for n, sc in enumerate(ep.scenes, start=1):
            h = doc.add_paragraph()
            h.add_run(f"场次 {ep.number}-{n}　{_TIME_ZH.get(sc.time_of_day, '日')}　{_IE_ZH.get(sc.int_ext, '内')}景"
                      f"　地点：{sc.place or '未知地点'}").bold = True
            doc.add_paragraph(f"人物：{'、'.join(sc.characters) if sc.characters else '无'}")
            for shot in sc.shots:
                size = _SIZE_ZH.get(str(shot.size), str(shot.size))
                doc.add_paragraph(f"△ {size}。{shot.visual_prompt}" + (f"（音效：{'、'.join(shot.sfx)}）" if shot.sfx else ""))
                for line in shot.lines:
                    p = doc.add_paragraph()
                    p.add_run(_speaker_label(line)).bold = True
                    emo = f"（{line.emotion}）" if line.emotion and line.kind != "narration" else ""
                    p.add_run(f"{emo}：{line.text}")
        if ep.cliffhanger:
            doc.add_paragraph(f"【结尾悬念】{ep.cliffhanger}")
        if ep.paywall:
            p = doc.add_paragraph()
            p.add_run("【付费卡点】").bold = True
    path = Path(path)
    with atomic_path(path) as tmp:
        doc.save(str(tmp))
    return path
