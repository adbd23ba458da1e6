"""Clean a web-novel dump and split it into chapters and paragraphs, keeping offsets.

Nothing is deleted from the text: junk lines (site watermarks, ads, "更新时间", "本章字数",
separators) are simply not turned into paragraphs, so every paragraph is a span of the decoded
text returned by :func:`agents.script.reader.read_novel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WS = " \t\u3000\xa0\u2002\u2003\u200b\ufeff"

# Chinese numerals as used in headings (第一章, 第二十一回, 第１２章, 第一百零八回).
_NUM = r"[零〇一二三四五六七八九十百千万两0-9０-９]{1,8}"
_UNIT = r"[章回节集话幕]"
_PREFIX = r"(?:《[^》]{0,20}》\s*目录\s*|目录\s*|正文\s*|卷[^\s]{0,8}\s+|第" + _NUM + r"卷\s*[^\s第]{0,20}\s*|#{1,6}\s*|【\s*|\[\s*)*"
_HEADING_RE = re.compile(
    r"^" + _PREFIX + r"(?P<label>第" + _NUM + _UNIT + r")(?P<rest>.{0,40})$"
)
_SPECIAL_RE = re.compile(
    r"^" + _PREFIX + r"(?P<label>楔子|序章|序言|引子|前言|序幕|尾声|后记|终章|附录|番外(?:篇)?[一二三四五六七八九十0-9]*)"
    r"(?P<rest>(?:[\s　:：·.、]+.{0,40})?)$"
)
_EN_HEADING_RE = re.compile(
    r"^(?:#{1,6}\s*)?(?P<label>(?:chapter|CHAPTER|Chapter)\s+(?:\d{1,4}|[IVXLCivxlc]{1,8}|[A-Za-z-]{3,12}))(?P<rest>(?:[\s:.\-–—]+.{0,60})?)$"
)
_OUTLINE_RE = re.compile(r"^(?:#{1,6}\s*)?(?P<label>(?:第" + _NUM + r"集|Episode\s+\d{1,3}))(?P<rest>[\s:：.、-].{0,60}|)$")

# Lines that are never story text. Strong markers drop the line whatever its length.
_JUNK_STRONG = re.compile(
    r"https?://|www\.|\.(?:com|net|org|cn|cc|me|info|xyz|top)\b|更新时间|本章字数|上传时间|发布时间|"
    r"章节内容(?:开始|结束)|24小时内删除|下载24小时|购买正版|正版图书|不得用作商业用途|"
    r"TXT小说|txt小说|小说天堂|电子书下载|手机免费下载|免费下载阅读|本书来自|本站|请记住本|加入书签|"
    r"推荐票|月票|求收藏|求推荐|未完待续|本章完|全文完|全书完|作品仅供|书友|笔趣阁|顶点小说|起点中文网|"
    r"手机阅读|最新章节|[Tt][Xx][Tt]下载"
)
_JUNK_SHORT = re.compile(r"首发|整理|制作|扫校|校对|排版|打字|转载|版权|作者[:：]|出版社|ISBN|字数[:：]")
_SEPARATOR = re.compile(r"^[\-=*_~#·.。…—\s※☆★◆◇○●□■<>＊＋+|/\\]+$")
_TITLE_LINE = re.compile(r"^(?:《(?P<a>[^》]{1,30})》|\[\s*(?P<b>[^\]/]{1,30}?)\s*(?:/[^\]]*)?\]|【(?P<c>[^】]{1,30})】)$")


@dataclass(slots=True)
class Paragraph:
    start: int  # offsets of the stripped line in the decoded text
    end: int
    chapter: int


@dataclass(slots=True)
class Chapter:
    index: int  # 1-based; 0 is text before the first heading
    label: str  # 第一回, 楔子, Chapter 1
    name: str  # what follows the label: 灵根育孕源流出　心性修持大道生
    start: int  # start of the heading line (of the first paragraph for chapter 0)
    end: int  # start of the next chapter's heading, or the end of the text
    heading_end: int
    paragraphs: list[Paragraph] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.label} {self.name}".strip() if self.name else self.label


@dataclass(slots=True)
class Book:
    text: str
    title: str  # found in the front matter, or ""
    chapters: list[Chapter]
    junk_lines: int
    junk_chars: int

    def paragraphs(self) -> list[Paragraph]:
        return [p for ch in self.chapters for p in ch.paragraphs]


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _WS:
        start += 1
    while end > start and text[end - 1] in _WS:
        end -= 1
    return start, end


def is_junk(line: str) -> bool:
    if _SEPARATOR.match(line):
        return True
    if _JUNK_STRONG.search(line):
        return True
    if len(line) <= 60 and _JUNK_SHORT.search(line):
        return True
    return False


def match_heading(line: str) -> tuple[str, str] | None:
    """``(label, name)`` when ``line`` is a chapter heading."""
    if len(line) > 60 or "。" in line[:-1] or "“" in line or "」" in line:
        return None
    for rx in (_HEADING_RE, _SPECIAL_RE, _EN_HEADING_RE, _OUTLINE_RE):
        m = rx.match(line)
        if m:
            rest = m.group("rest").strip(_WS + ":：·.、-–—】]")
            label = re.sub(r"\s+", " ", m.group("label"))
            if rx is _HEADING_RE and rest and (rest[0] in "，,；;" or rest.endswith(("。", "！", "？"))
                                                or (len(rest) > 15 and ("，" in rest or "," in rest))):
                return None  # 第一回合，两人战了三十合…… is prose
            return label, rest
    return None


def split_book(text: str) -> Book:
    """Find chapters and paragraphs. Text before the first heading becomes chapter 0 if it is prose."""
    title = ""
    junk_lines = 0
    junk_chars = 0
    chapters: list[Chapter] = []
    front = Chapter(index=0, label="序", name="", start=0, end=0, heading_end=0)
    current = front
    pos = 0
    n = len(text)
    while pos <= n:
        nl = text.find("\n", pos)
        if nl < 0:
            nl = n
        s, e = strip_span(text, pos, nl)
        if e > s:
            line = text[s:e]
            heading = match_heading(line)
            if heading is not None:
                current.end = pos
                current = Chapter(index=len(chapters) + 1, label=heading[0], name=heading[1],
                                  start=s, end=n, heading_end=e)
                chapters.append(current)
            elif is_junk(line):
                junk_lines += 1
                junk_chars += e - s
            elif not chapters and not title and (m := _TITLE_LINE.match(line)):
                title = (m.group("a") or m.group("b") or m.group("c") or "").strip()
            else:
                if current is front and not front.paragraphs:
                    front.start = s
                current.paragraphs.append(Paragraph(s, e, current.index))
        pos = nl + 1
    if chapters:
        front.end = chapters[0].start
    else:
        front.end = n
    front_chars = sum(p.end - p.start for p in front.paragraphs)
    if not chapters:
        # No headings: the whole text is one chapter.
        front.index = 1
        front.label = "全文"
        for p in front.paragraphs:
            p.chapter = 1
        chapters = [front] if front.paragraphs else []
    elif front_chars >= 300:
        chapters.insert(0, front)
    else:
        # a title line, an author line or a blurb: not story text
        if front.paragraphs and not title:
            first = text[front.paragraphs[0].start:front.paragraphs[0].end]
            if len(first) <= 20:
                title = first.strip("《》[]【】 ")
        junk_lines += len(front.paragraphs)
        junk_chars += front_chars
    chapters = [c for c in chapters if c.paragraphs or c.index > 0]
    return Book(text=text, title=title, chapters=chapters, junk_lines=junk_lines, junk_chars=junk_chars)
