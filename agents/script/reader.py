"""Read a novel into one decoded text whose character offsets every source span refers to.

TXT is decoded from UTF-8, GB18030 (a superset of GBK/GB2312), UTF-16 or UTF-32, with or
without a byte-order mark; EPUB and DOCX are unpacked with the standard library (their text is
the paragraphs joined by newlines); Markdown is read as text. The decoded text has the BOM
removed and line endings normalised to ``\\n``; ``sha256`` is over the file's original bytes so a
screenplay can name exactly which file it came from.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import logging
import posixpath
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

from core.errors import InputError, TextDecodeError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown")
DOC_SUFFIXES = (".epub", ".docx")
SUFFIXES = TEXT_SUFFIXES + DOC_SUFFIXES
MAX_BYTES = 64 * 1024 * 1024  # a 64 MB novel is ~20 million characters; beyond that, split it

# Magic numbers of formats people drop in by mistake: named in the error so the fix is clear.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "a Windows executable"),
    (b"Rar!", "a RAR archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office (.doc) file"),
    (b"ID3", "an MP3 file"),
    (b"RIFF", "a RIFF (WAV/AVI) file"),
    (b"\x00\x00\x00\x18ftyp", "an MP4 file"),
    (b"\x00\x00\x00\x20ftyp", "an MP4 file"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
    (b"SQLite format 3", "an SQLite database"),
)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True, slots=True)
class NovelText:
    """A decoded novel. Source spans are offsets into ``text``."""

    text: str
    encoding: str  # utf-8, utf-8-sig, gb18030, utf-16-le, ..., epub, docx, literal
    sha256: str  # of the original bytes (UTF-8 bytes for literal text)
    path: str = ""  # empty for literal text
    title_hint: str = ""  # from the file name or the EPUB/DOCX metadata

    def __len__(self) -> int:
        return len(self.text)


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for c in sample if (ord(c) < 32 and c not in "\n\r\t\f\v") or c == "\ufffd")
    return bad / len(sample)


def _decode_tolerant(data: bytes, enc: str) -> tuple[str, int]:
    """``(data.decode(enc), 0)``, except that a multi-byte character cut off at the very end (a
    truncated download) is dropped: ``(text, bytes dropped)``. Any other error is raised."""
    try:
        return data.decode(enc), 0
    except UnicodeDecodeError as e:
        cut_short = e.reason in ("unexpected end of data", "incomplete multibyte sequence", "truncated data")
        if cut_short and e.end >= len(data) - 1 and len(data) - e.start < 4:
            return data[:e.start].decode(enc), len(data) - e.start
        raise


def _warn_dropped(origin: str, dropped: int) -> None:
    if dropped:
        log.warning("%s ends in the middle of a character (a truncated file?): its last %d byte(s) are dropped",
                    origin, dropped)


def decode_bytes(data: bytes, *, origin: str = "text") -> tuple[str, str]:
    """Decode ``data``; returns ``(text, encoding)``. Raises :class:`TextDecodeError` with the fix."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                text, dropped = _decode_tolerant(data[len(bom):], enc)
            except UnicodeDecodeError as e:
                raise TextDecodeError(
                    f"{origin} starts with a {enc} byte-order mark but is not valid {enc}: {e.reason} at byte {e.start}",
                    hint="re-save the file as UTF-8",
                ) from e
            _warn_dropped(origin, dropped)
            return text, (enc + "-sig" if enc == "utf-8" else enc)
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise InputError(f"{origin} is {what}, not a novel", hint="give a .txt, .epub, .docx or .md file")
    dropped = 0
    try:
        text, dropped = _decode_tolerant(data, "utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        text, encoding = "", ""
    if not encoding or "\x00" in text[:65536]:
        text, encoding, dropped = _decode_legacy(data, origin)
    _warn_dropped(origin, dropped)
    if _control_ratio(text) > 0.01:
        raise InputError(f"{origin} holds control characters; it is probably a binary file",
                         hint="give a .txt, .epub, .docx or .md file")
    return text, encoding


def _plausibility(text: str) -> float:
    """Share of characters that ordinary Chinese or English prose is made of."""
    sample = text[:20000]
    if not sample:
        return 0.0
    good = sum(1 for c in sample if ("\u4e00" <= c <= "\u9fff") or (" " <= c <= "~") or c in "\n\t"
               or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef" or c in "“”‘’—…·")
    return good / len(sample)


_PROSE_MARKS = re.compile(r"[\n，。！？、：；,.!?]")


def _decode_legacy(data: bytes, origin: str) -> tuple[str, str, int]:
    """Not UTF-8: UTF-16 without a BOM, GB18030 (covers GBK and GB2312) or Big5, whichever reads as prose.

    Returns ``(text, encoding, bytes dropped from a character cut off at the end)``.
    """
    best: tuple[float, str, str, int] = (0.0, "", "", 0)
    for enc in ("utf-16-le", "utf-16-be", "gb18030", "big5"):
        try:
            text, dropped = _decode_tolerant(data, enc)
        except UnicodeDecodeError:
            continue
        score = _plausibility(text)
        if dropped and (score < 0.85 or not _PROSE_MARKS.search(text[:20000])):
            continue  # valid only once cut short, and not punctuated prose either: no guess at all
        if score > best[0] + 0.02:  # earlier candidates win ties
            best = (score, text, enc, dropped)
    if best[0] >= 0.85:
        return best[1], best[2], best[3]
    if best[2]:
        raise InputError(f"{origin} is a binary file or in an unknown encoding (best guess {best[2]} reads as "
                         f"{best[0]:.0%} text)", hint="give a .txt, .epub, .docx or .md file saved as UTF-8")
    raise TextDecodeError(
        f"{origin} is neither UTF-8, GB18030/GBK, Big5 nor UTF-16 text",
        hint="re-save the file as UTF-8 (for example with iconv -f YOURENC -t UTF-8)",
    )


class _HTMLText(HTMLParser):
    """Text of an XHTML chapter: block elements become lines, scripts and styles are skipped."""

    _BLOCK = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "section", "blockquote", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "head"}:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"}:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data.replace("\n", " "))

    def text(self) -> str:
        joined = "".join(self.parts)
        lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in joined.split("\n")]
        return "\n".join(ln for ln in lines if ln)


def _read_epub(path: Path, data: bytes) -> tuple[str, str]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise InputError(f"EPUB {str(path)!r} is not a valid ZIP archive: {e}", hint="re-export the EPUB") from e
    with zf:
        names = set(zf.namelist())
        try:
            container = ElementTree.fromstring(zf.read("META-INF/container.xml"))
        except KeyError as e:
            raise InputError(f"EPUB {str(path)!r} has no META-INF/container.xml", hint="re-export the EPUB") from e
        ns = {"c": "urn:oasis:names:tc:opendocument:xmlns:container"}
        rootfile = container.find(".//c:rootfile", ns)
        if rootfile is None or not rootfile.get("full-path"):
            raise InputError(f"EPUB {str(path)!r} names no package document", hint="re-export the EPUB")
        opf_path = rootfile.get("full-path", "")
        opf = ElementTree.fromstring(zf.read(opf_path))
        base = posixpath.dirname(opf_path)
        ons = {"o": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/"}
        title_el = opf.find(".//dc:title", ons)
        title = (title_el.text or "").strip() if title_el is not None else ""
        manifest = {item.get("id"): item.get("href", "") for item in opf.findall(".//o:manifest/o:item", ons)}
        chapters: list[str] = []
        for ref in opf.findall(".//o:spine/o:itemref", ons):
            href = manifest.get(ref.get("idref"))
            if not href:
                continue
            member = posixpath.normpath(posixpath.join(base, html.unescape(href).split("#")[0]))
            if member not in names:
                log.warning("EPUB %s: spine item %s is missing; skipped", path, member)
                continue
            raw = zf.read(member)
            text, _ = decode_bytes(raw, origin=f"{path.name}:{member}")
            parser = _HTMLText()
            parser.feed(text)
            body = parser.text()
            if body:
                chapters.append(body)
    if not chapters:
        raise InputError(f"EPUB {str(path)!r} holds no readable text", hint="check that it is not DRM-protected")
    return "\n\n".join(chapters), title


def _read_docx(path: Path) -> tuple[str, str]:
    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    try:
        with zipfile.ZipFile(path) as zf:
            root = ElementTree.fromstring(zf.read("word/document.xml"))
            try:
                core = ElementTree.fromstring(zf.read("docProps/core.xml"))
                t = core.find(".//{http://purl.org/dc/elements/1.1/}title")
                title = (t.text or "").strip() if t is not None else ""
            except KeyError:
                title = ""
    except (zipfile.BadZipFile, KeyError) as e:
        raise InputError(f"DOCX {str(path)!r} is not a valid Word document: {e}",
                         hint="re-save it from Word or LibreOffice as .docx") from e
    paragraphs: list[str] = []
    for p in root.iter(f"{w}p"):
        parts: list[str] = []
        for node in p.iter():
            if node.tag == f"{w}t" and node.text:
                parts.append(node.text)
            elif node.tag == f"{w}tab":
                parts.append(" ")
            elif node.tag in (f"{w}br", f"{w}cr"):
                parts.append("\n")
        paragraphs.append("".join(parts))
    text = "\n".join(paragraphs)
    return text, title


def read_novel(path: str | Path) -> NovelText:
    """Read and decode a novel file (TXT in any common Chinese encoding, EPUB, DOCX, Markdown)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"novel {str(path)!r} does not exist", hint="check the path")
    if path.is_dir():
        raise InputError(f"novel {str(path)!r} is a folder", hint="give one .txt, .epub, .docx or .md file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"novel {str(path)!r} is empty (0 bytes)", hint="give a file with the novel's text")
    if size > MAX_BYTES:
        raise InputError(f"novel {str(path)!r} is {size / 1e6:.0f} MB, more than {MAX_BYTES // 2**20} MB",
                         hint="split it into volumes and adapt each")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    title = path.stem
    if suffix == ".epub" or (data.startswith(b"PK") and b"mimetypeapplication/epub+zip" in data[:100]):
        text, meta_title = _read_epub(path, data)
        encoding = "epub"
        title = meta_title or title
    elif suffix == ".docx" or (data.startswith(b"PK") and b"word/" in data[:2000]):
        text, meta_title = _read_docx(path)
        encoding = "docx"
        title = meta_title or title
    elif data.startswith(b"PK"):
        raise InputError(f"{str(path)!r} is a ZIP archive, not a novel", hint="unpack it and give the .txt inside")
    else:
        text, encoding = decode_bytes(data, origin=repr(str(path)))
    text = normalise_newlines(text)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise InputError(f"novel {str(path)!r} holds only whitespace", hint="give a file with the novel's text")
    log.info("read %s: %d characters, %s, sha256 %s", path, len(text), encoding, digest[:12])
    return NovelText(text=text, encoding=encoding, sha256=digest, path=str(path), title_hint=title)


def literal_text(text: str, title: str = "") -> NovelText:
    """A logline or an outline typed in directly: it is its own source."""
    text = normalise_newlines(text)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise InputError("the source text is empty", hint="give a novel file, or a logline/outline as text")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return NovelText(text=text, encoding="literal", sha256=digest, path="", title_hint=title)


def resolve_source(source: str | Path) -> NovelText:
    """A :class:`Path`, or a string naming an existing file, is read as a file; other strings are text.

    Only literal text is taken as text: a string that names a folder, or that looks like a path
    to a file that is not there (a known suffix, a folder part that exists, ``./`` or ``~/`` in
    front), is refused with the path named, never adapted as a one-line logline.
    """
    if isinstance(source, Path):
        return read_novel(source)
    if not isinstance(source, str):
        raise InputError(f"source must be a path or text, got {type(source).__name__}")
    candidate = source.strip()
    looks_like_path = "\n" not in candidate and 0 < len(candidate) < 1024
    if looks_like_path:
        p = Path(candidate).expanduser()
        try:
            exists, is_dir = p.is_file(), p.is_dir()
        except OSError:
            exists = is_dir = False
        if exists:
            return read_novel(p)
        if is_dir:
            raise InputError(f"novel {candidate!r} is a folder", hint="give one .txt, .epub, .docx or .md file")
        if _mistyped_path(candidate, p):
            near = _near_files(p)
            raise InputError(f"novel {candidate!r} does not exist",
                             hint=(f"did you mean {', '.join(near)}? " if near else "check the path; ")
                             + "to adapt literal text, pass the text itself")
    return literal_text(source)


def _mistyped_path(candidate: str, p: Path) -> bool:
    """A string that was meant as a file name rather than as a logline."""
    if p.suffix.lower() in SUFFIXES and (("/" in candidate) or ("\\" in candidate) or " " not in candidate):
        return True
    if any(ch.isspace() for ch in candidate):
        return False  # loglines have spaces; paths typed on a command line rarely do
    if p.is_absolute() or candidate.startswith(("./", "../", "~/", ".\\", "..\\")) or candidate.endswith(("/", "\\")):
        return True
    if ("/" in candidate or "\\" in candidate) and str(p.parent) not in ("", ".") and p.parent.is_dir():
        return True  # its folder exists: a path to a missing file, e.g. novels/aq (not "男/女主角的故事")
    return bool(_near_files(p))


def _near_files(p: Path) -> list[str]:
    """Files beside ``p`` with its name and a novel suffix: ``novel`` -> ``novel.txt``."""
    try:
        return [str(p.with_name(p.name + sfx)) for sfx in SUFFIXES if p.name and p.with_name(p.name + sfx).is_file()]
    except (OSError, ValueError):
        return []
