"""Reading novels: encodings, BOMs, line endings, junk, EPUB/DOCX/Markdown, bad files."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from agents.script.reader import decode_bytes, read_novel, resolve_source
from agents.script.text import is_junk, match_heading, split_book
from core.errors import InputError, TextDecodeError

SAMPLE = "第一章　开端\r\n    “你来了！”阿宝道。\r\n    他点点头。\r\n第二章 结局\r\n    完了。\r\n"


@pytest.mark.parametrize(
    ("encoding", "bom", "expect"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
        ("gb18030", b"", "gb18030"),
        ("gbk", b"", "gb18030"),
        ("utf-16-le", b"\xff\xfe", "utf-16-le"),
        ("utf-16-be", b"\xfe\xff", "utf-16-be"),
        ("utf-16-le", b"", "utf-16-le"),  # no BOM: found from the NUL byte lanes
        ("utf-16-be", b"", "utf-16-be"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "utf-32-le"),
    ],
)
def test_encodings_decode_to_the_same_text(tmp_path: Path, encoding: str, bom: bytes, expect: str) -> None:
    raw = bom + SAMPLE.encode(encoding)
    path = tmp_path / f"n-{encoding}.txt"
    path.write_bytes(raw)
    novel = read_novel(path)
    assert novel.encoding == expect
    assert novel.text == SAMPLE.replace("\r\n", "\n")  # BOM gone, CRLF -> LF
    assert novel.sha256 == hashlib.sha256(raw).hexdigest()  # of the original bytes
    assert "\ufeff" not in novel.text


def test_lone_cr_line_endings_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "mac.txt"
    path.write_bytes("第一章\r他走了。\r".encode())
    assert read_novel(path).text == "第一章\n他走了。\n"


def test_empty_whitespace_binary_and_missing_files_fail_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_novel(empty)
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\u3000\n", encoding="utf-8")
    with pytest.raises(InputError, match="whitespace"):
        read_novel(blank)
    png = tmp_path / "cover.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="PNG"):
        read_novel(png)
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(InputError, match="binary|unreadable"):
        read_novel(binary)
    with pytest.raises(InputError, match="does not exist"):
        read_novel(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="folder"):
        read_novel(tmp_path)


def test_undecodable_text_names_the_fix() -> None:
    # invalid in UTF-8, GB18030 and Big5 alike
    with pytest.raises(TextDecodeError) as err:
        decode_bytes(b"\x81\x20" * 20 + b"\xff", origin="x.txt")
    assert "UTF-8" in str(err.value) and "iconv" in (err.value.hint or "")


def test_junk_lines_and_headings() -> None:
    for junk in ("更新时间:2007-11-16 7:55:51 本章字数:4804", "TXT小说天堂  https://www.xstt5.com，最有文艺气息",
                 " ------章节内容开始-------", "作品仅供读者预览,请在下载24小时内删除", "***", "（未完待续）"):
        assert is_junk(junk.strip()), junk
    assert not is_junk("话说天下大势，分久必合，合久必分。")
    cases = {
        "第一章　序": ("第一章", "序"),
        "第九章大团圆": ("第九章", "大团圆"),
        "第12章 风起": ("第12章", "风起"),
        "第一百二十回 荐杜预老将献新谋": ("第一百二十回", "荐杜预老将献新谋"),
        "正文 第一回 宴桃园豪杰三结义": ("第一回", "宴桃园豪杰三结义"),
        "《》目录 第二回\u3000悟彻菩提真妙理": ("第二回", "悟彻菩提真妙理"),
        "楔子": ("楔子", ""),
        "序章 天降": ("序章", "天降"),
        "Chapter 3: The Road": ("Chapter 3", "The Road"),
        "## 第3章 追杀": ("第3章", "追杀"),
        "第一卷 潜龙 第五章 出山": ("第五章", "出山"),
        "第1集：重生": ("第1集", "重生"),
    }
    for line, want in cases.items():
        assert match_heading(line) == want, line
    for prose in ("第一是文章的名目。", "他不跳第四回井，也不是好女人。", "第一回合，两人战了三十合，不分胜负，各自回营去了。"):
        assert match_heading(prose) is None, prose


def test_split_book_skips_front_matter_and_keeps_offsets() -> None:
    text = ("[某书 / 某人 著 ]\n作品仅供读者预览,请在下载24小时内删除\n\n正文 第一回 起\n更新时间:2007 本章字数:10\n"
            "    甲说：“走。”\n第二回 止\n乙道：“好！”\n")
    book = split_book(text)
    assert book.title == "某书"
    assert [c.label for c in book.chapters] == ["第一回", "第二回"]
    assert book.junk_lines >= 2
    for ch in book.chapters:
        for p in ch.paragraphs:
            assert text[p.start:p.end].strip() == text[p.start:p.end]
            assert "更新时间" not in text[p.start:p.end]


def test_markdown_epub_docx(tmp_path: Path) -> None:
    md = tmp_path / "n.md"
    md.write_text("# 第一章 开端\n\n“你好！”阿宝道。\n", encoding="utf-8")
    assert [c.label for c in split_book(read_novel(md).text).chapters] == ["第一章"]

    epub = tmp_path / "n.epub"
    with zipfile.ZipFile(epub, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr("META-INF/container.xml",
                    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                    '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                    "</rootfiles></container>")
        zf.writestr("OEBPS/content.opf",
                    '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
                    '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>测试书</dc:title></metadata>'
                    '<manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>'
                    '<item id="c2" href="c2.xhtml" media-type="application/xhtml+xml"/></manifest>'
                    '<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>')
        zf.writestr("OEBPS/c1.xhtml", "<html><head><style>p{}</style></head><body><h1>第一章 开端</h1>"
                                      "<p>“你好！”阿宝道。</p><script>x()</script></body></html>")
        zf.writestr("OEBPS/c2.xhtml", "<html><body><h2>第二章 结局</h2><p>阿宝走了&amp;散了。</p></body></html>")
    novel = read_novel(epub)
    assert novel.encoding == "epub" and novel.title_hint == "测试书"
    assert "x()" not in novel.text and "p{}" not in novel.text and "阿宝走了&散了。" in novel.text
    assert [c.label for c in split_book(novel.text).chapters] == ["第一章", "第二章"]

    docx_mod = pytest.importorskip("docx")
    doc = docx_mod.Document()
    doc.add_paragraph("第一章 开端")
    doc.add_paragraph("“你好！”阿宝道。")
    doc.add_paragraph("第二章 结局")
    doc.add_paragraph("阿宝走了。")
    path = tmp_path / "n.docx"
    doc.save(str(path))
    novel = read_novel(path)
    assert novel.encoding == "docx"
    assert "“你好！”阿宝道。" in novel.text
    assert len(split_book(novel.text).chapters) == 2


def test_source_is_a_file_or_literal_text(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("第一章\n阿宝走了。\n", encoding="utf-8")
    assert resolve_source(str(path)).path == str(path)
    assert resolve_source(path).path == str(path)
    lit = resolve_source("一个少年在末世觉醒异能，为救妹妹闯入禁区。")
    assert lit.encoding == "literal" and lit.path == ""
    with pytest.raises(InputError, match="does not exist"):
        resolve_source(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="empty"):
        resolve_source("   ")


def test_real_novels_decode_in_any_encoding(novels_dir: Path, tmp_path: Path) -> None:
    xyj = read_novel(novels_dir / "西游记.txt")
    assert xyj.encoding == "utf-8-sig" and not xyj.text.startswith("\ufeff")
    aq = read_novel(novels_dir / "阿Q正传.txt")
    assert "\r" not in aq.text  # the file has CRLF line endings
    for enc in ("gb18030", "utf-16"):
        copy = tmp_path / f"aq-{enc}.txt"
        copy.write_bytes(aq.text.encode(enc))
        assert read_novel(copy).text == aq.text
