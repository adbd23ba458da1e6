"""Split paragraphs into narration and speech, and speech and narration into speakable lines.

Speech is found in curly quotes (“” 「」 『』 ‘’, and straight quotes), in colon speech
(``他想：我的儿子会阔得多啦！``), and across paragraphs (a quote that opens a paragraph after
``……道：``). Quoted terms (``他的“行状”``) stay narration. Every piece keeps its offsets.

English prose works too: an apostrophe inside a word (``don't``, ``Mary’s``) is a letter, not a
quote; English speech tags (``said Mary``, ``John laughed.``) are tags; long English lines are
split between words, at up to :data:`MAX_LATIN_LINE_CHARS` (two subtitle rows of 42).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.script.text import Paragraph

OPEN_TO_CLOSE = {"“": "”", "「": "」", "『": "』", "‘": "’", "\"": "\"", "〝": "〞", "﹁": "﹂"}
CLOSERS = set("”」』’〞﹂")
QUOTE_CHARS = set("“”「」『』‘’\"'〝〞﹁﹂")
BRACKET_CHARS = set("()（）[]【】<>〈〉《》〔〕{}｛｝［］")
BAD_CHARS = QUOTE_CHARS | BRACKET_CHARS | set("□■�#*@_|\\/^~=+<>`")

# Verbs that introduce speech when they end the text right before a quote or a colon.
SPEECH_VERB = (
    r"(?:说道|说着|说|道|曰|云|问道|问|答道|答|回道|回答|应道|应|叫道|叫|喊道|喊|嚷道|嚷|骂道|骂|"
    r"笑道|笑|哭道|哭|叹道|叹|喝道|喝|吼道|吼|吆喝道|吆喝|告诉|禀道|禀|奏道|奏|念道|念|吟道|吟|"
    r"嘱咐|吩咐|分付|喝令|劝道|劝|呼|大呼|高叫|大叫|叫声|叫一声|想道|想|心想|暗想|寻思|思量|忖道|暗道|心道|"
    r"自语|言|谓|颂扬说|声)"
)
THINK_VERB = re.compile(r"(?:想道|想|心想|暗想|寻思|思量|忖道|暗道|心道|心里说|自忖)[：:，,]?\s*$")
PRE_SPEECH = re.compile(SPEECH_VERB + r"[了着]?\s*[：:，,]?\s*$")
COLON_SPEECH = re.compile(SPEECH_VERB + r"\s*[：:](?=\s*[^\s“「『‘\"])")
# English speech tags: "said Mary", "Mary replied", "he asked quietly", "John laughed."
EN_SPEECH_VERB = (
    r"(?:said|says|asked|asks|replied|replies|answered|cried|shouted|called|whispered|muttered|murmured|"
    r"exclaimed|continued|added|laughed|smiled|sighed|snapped|yelled|screamed|thought|wondered|demanded|"
    r"insisted|repeated|protested|agreed|admitted|explained|suggested|warned|growled|hissed|roared|sobbed|"
    r"groaned|retorted|declared|announced|remarked|interrupted|pleaded|begged|ordered|went on|told)"
)
_EN_TITLE = r"(?:(?:Mr|Mrs|Ms|Dr|Miss|Sir|Lady|Lord|Aunt|Uncle)\.?\s+)?"
EN_WHO = r"(?:" + _EN_TITLE + r"[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){0,2}|[Hh]e|[Ss]he|[Tt]hey|I|[Ww]e)"
EN_PRE_SPEECH = re.compile(EN_WHO + r"\s+(?:\w+ly\s+)?" + EN_SPEECH_VERB + r"\b(?:\s+\w+){0,3}?\s*[,:.]?\s*$")
EN_POST_SPEECH = re.compile(r"^\s*[,.]?\s*(?:" + EN_SPEECH_VERB + r"\s+" + EN_WHO + r"|" + EN_WHO
                            + r"\s+(?:\w+ly\s+)?" + EN_SPEECH_VERB + r")\b")
PRE_SPEECH = re.compile(PRE_SPEECH.pattern + "|" + EN_PRE_SPEECH.pattern)
POST_SPEECH = re.compile(r"^[^。！？!?“”「」]{0,24}?" + SPEECH_VERB + r"[了着]?\s*(?:[。，,！!？?]|$)"
                         + "|" + EN_POST_SPEECH.pattern)
POEM_CUE = re.compile(r"(?:有?诗(?:叹|赞|为证)?|词|赞|偈|歌|颂|诗云|铭)\s*(?:曰|云|为证)?\s*[：:，,]?\s*$")
OS_CUE = re.compile(r"只听得?|忽听得?|听得|门外|窗外|帘外|外面|里面|远远|隔壁|屋里")

SENT_END = re.compile(r"[。！？!?；;…]+[”」』’]*|(?<=[A-Za-z0-9)\]])\.+[”’\"]*(?=\s|$)|\s{2,}|[\u3000]+")
CLAUSE_BREAK = re.compile(r"[，,、：:—]+")
HAS_CONTENT = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")
VERSE_CLAUSE = re.compile(r"[，。；？！,;?!]")

MAX_LINE_CHARS = 36  # a subtitle line a viewer reads in about 3-4 s
MAX_LATIN_LINE_CHARS = 84  # English: two rows of 42 characters, the common subtitle limit
MIN_LINE_CHARS = 2
_APOSTROPHES = "'’"


def is_apostrophe(text: str, k: int) -> bool:
    """``text[k]`` is an apostrophe inside a word (don't, Mary’s, rock'n'roll), not a quote mark."""
    return (text[k] in _APOSTROPHES and 0 < k < len(text) - 1
            and text[k - 1].isalpha() and text[k + 1].isalpha() and text[k - 1].isascii())


def _latin(text: str) -> bool:
    letters = sum(1 for c in text if c.isalpha())
    return letters > 0 and sum(1 for c in text if c.isascii() and c.isalpha()) > letters // 2


@dataclass(slots=True)
class Segment:
    kind: str  # narration | speech | poem
    start: int
    end: int
    para: int  # index of the paragraph in the book
    chapter: int
    line_kind: str = "dialogue"  # dialogue | os | vo (for speech)
    pre: str = ""  # narration of the same sentence before the speech (attribution)
    post: str = ""  # narration right after a quote, up to the sentence end
    speaker: str = ""  # filled by attribution
    how: str = ""  # how the speaker was found: pre | post | beat | para | alternation | vocative | pronoun | ...
    confidence: float = 0.0  # how sure that rule is, 0..1


def _find_close(text: str, open_ch: str, i: int, end: int) -> int:
    close = OPEN_TO_CLOSE[open_ch]
    if open_ch == close:  # straight quotes toggle
        j = text.find(close, i + 1, end)
        return j
    depth = 0
    k = i + 1
    while k < end:
        c = text[k]
        if c == open_ch:
            depth += 1
        elif c == close and is_apostrophe(text, k):
            pass  # ‘I don’t know,’: the apostrophe does not close the quote
        elif c == close:
            if depth == 0:
                return k
            depth -= 1
        k += 1
    return -1


def _is_verse(s: str) -> bool:
    parts = [p for p in VERSE_CLAUSE.split(s) if p.strip()]
    if len(parts) < 4:  # a couplet of equal halves is as often plain speech (和尚动得，我动不得？)
        return False
    lengths = {len(p.strip()) for p in parts}
    return len(lengths) == 1 and next(iter(lengths)) in (4, 5, 6, 7)


def _last_sentence(s: str) -> str:
    cut = max(s.rfind(ch) for ch in "。！？!?")
    if cut >= 0:
        while cut + 1 < len(s) and s[cut + 1] in CLOSERS:
            cut += 1
    return s[cut + 1:] if cut >= 0 else s


def _stray_closer(rest: str, limit: int = 200) -> int:
    """Index of the first closing quote in ``rest`` that no opening quote in ``rest`` pairs with."""
    depth = 0
    for k, c in enumerate(rest[:limit]):
        if c in OPEN_TO_CLOSE and c != "\"":
            depth += 1
        elif c in CLOSERS:
            if depth == 0:
                return k
            depth -= 1
        elif c in "。！？!?" and k + 1 < len(rest) and rest[k + 1] not in CLOSERS and depth == 0 and k > 80:
            return -1  # far past a sentence end: not our quote
    return -1


def segment_paragraph(text: str, p: Paragraph, para_index: int, prev_tail: str) -> list[Segment]:
    """Narration/speech segments of one paragraph. ``prev_tail`` is the end of the previous paragraph."""
    s, e = p.start, p.end
    raw: list[tuple[str, int, int]] = []  # (kind, start, end); quote spans exclude the marks
    i = s
    narr_start = s
    while i < e:
        c = text[i]
        if c in OPEN_TO_CLOSE and not (c == "‘" and i + 1 < e and text[i + 1] == "’"):
            j = _find_close(text, c, i, e)
            if j < 0:
                j = e  # an unclosed quote runs to the end of the paragraph (long speeches)
            if narr_start < i:
                raw.append(("narration", narr_start, i))
            raw.append(("quote", i + 1, j))
            i = j + 1
            narr_start = i
            continue
        i += 1
    if narr_start < e:
        raw.append(("narration", narr_start, e))

    segs: list[Segment] = []
    pending_narr: tuple[int, int] | None = None  # merged narration (with inline term quotes)

    def flush() -> None:
        nonlocal pending_narr
        if pending_narr is not None:
            segs.extend(_split_colon_speech(text, pending_narr[0], pending_narr[1], para_index, p.chapter))
            pending_narr = None

    for k, (kind, a, b) in enumerate(raw):
        if kind == "narration":
            pending_narr = (pending_narr[0], b) if pending_narr is not None else (a, b)
            continue
        body = text[a:b]
        before = text[pending_narr[0]:pending_narr[1]] if pending_narr is not None else ""
        pre_sentence = _last_sentence(before)
        after = ""
        if k + 1 < len(raw) and raw[k + 1][0] == "narration":
            na, nb = raw[k + 1][1], raw[k + 1][2]
            after = text[na:nb]
            m = re.search(r"[。！？!?]", after)
            after = after[: m.end()] if m else after
        at_start = (a - 1) == s
        if at_start and not before:
            pre_sentence = prev_tail if prev_tail.rstrip().endswith(("：", ":")) else ""
        poem = bool(POEM_CUE.search(pre_sentence)) or (_is_verse(body) and not PRE_SPEECH.search(pre_sentence))
        colon = pre_sentence.rstrip().endswith(("：", ":"))
        punctuated = bool(re.search(r"[，。！？!?,…]", body))
        # “散会！”: a quote that ends like a sentence is said, however short; 他的“行状” is a term
        sentence = bool(re.search(r"[。！？!?…～~—][”’」』]*\s*$", body))
        after_speech = k >= 2 and raw[k - 2][0] == "quote" and bool(segs) and segs[-1].kind == "speech"
        speechy = (
            colon
            or at_start
            or (sentence and len(body) >= 2)
            or (punctuated and (bool(PRE_SPEECH.search(pre_sentence)) or bool(POST_SPEECH.match(after))
                                or len(body) >= 6 or after_speech))
        )
        if not speechy and not poem:
            # a quoted term inside narration: keep it in the narration
            pending_narr = (pending_narr[0], b + 1 if b < e else b) if pending_narr is not None else (a - 1, min(b + 1, e))
            continue
        flush()
        line_kind = "dialogue"
        if THINK_VERB.search(pre_sentence):
            line_kind = "vo"
        elif OS_CUE.search(pre_sentence):
            line_kind = "os"
        segs.append(Segment("poem" if poem else "speech", a, b, para_index, p.chapter, line_kind,
                            pre=pre_sentence, post=after))
    flush()
    return segs


def _split_colon_speech(text: str, a: int, b: int, para: int, chapter: int) -> list[Segment]:
    """Narration that may hold ``XX道：话`` speech without quotes."""
    out: list[Segment] = []
    chunk = text[a:b]
    pos = 0
    for m in COLON_SPEECH.finditer(chunk):
        if m.start() < pos:
            continue
        before = chunk[:m.start()]
        pre_sentence = _last_sentence(before) + m.group(0)
        sp_start = m.end()
        rest = chunk[sp_start:]
        thinking = THINK_VERB.search(pre_sentence) is not None
        stray = -1 if thinking else _stray_closer(rest)
        if stray >= 0:
            sp_end = sp_start + stray
            resume = sp_end + 1
        else:
            end_m = re.search(r"[。！？!?…]+", rest)
            sp_end = sp_start + (end_m.end() if end_m else len(rest))
            resume = sp_end
        if sp_end - sp_start < 2:
            continue
        if m.end() > pos:
            out.append(Segment("narration", a + pos, a + m.end(), para, chapter))
        kind = "vo" if THINK_VERB.search(pre_sentence) else ("os" if OS_CUE.search(pre_sentence) else "dialogue")
        poem = bool(POEM_CUE.search(pre_sentence))
        out.append(Segment("poem" if poem else "speech", a + sp_start, a + sp_end, para, chapter, kind,
                           pre=pre_sentence))
        pos = resume
    if pos < len(chunk):
        out.append(Segment("narration", a + pos, b, para, chapter))
    return [sg for sg in out if sg.end > sg.start]


def speakable_pieces(text: str, start: int, end: int, *, max_chars: int = MAX_LINE_CHARS,
                     narration: bool = False) -> list[tuple[int, int]]:
    """Sentence-size spans of ``text[start:end]`` that are clean to speak and show as subtitles.

    Pieces never contain quotes, brackets or placeholder glyphs. In speech, a sentence holding
    one is cut around it and each side kept when it still reads as words; in narration the whole
    sentence is left out (cutting around a quoted term leaves fragments). Trailing commas and
    colons are trimmed; sentence-final punctuation is kept.
    """
    out: list[tuple[int, int]] = []
    pos = start
    seg = text[start:end]
    bounds: list[tuple[int, int]] = []
    last = 0
    for m in SENT_END.finditer(seg):
        bounds.append((last, m.end()))
        last = m.end()
    if last < len(seg):
        bounds.append((last, len(seg)))
    for a, b in bounds:
        bad = [k for k in range(a, b) if seg[k] in BAD_CHARS and not is_apostrophe(seg, k)]
        if narration and bad:
            continue
        # cut at quotes/brackets/junk glyphs
        sub_start = a
        for k in [*bad, b]:
            if k > sub_start:
                out.extend(_fit(seg, sub_start, k, max_chars, pos))
            sub_start = k + 1
    return [(x, y) for x, y in out if y - x >= MIN_LINE_CHARS]


_TRIM_HEAD = "，,、：:；;。！？!?…—－-·.．\u3000 \t"
_TRIM_TAIL = "，,、：:；;—－-·\u3000 \t"


def _trim(seg: str, a: int, b: int) -> tuple[int, int]:
    while a < b and seg[a] in _TRIM_HEAD:
        a += 1
    while b > a and seg[b - 1] in _TRIM_TAIL:
        b -= 1
    return a, b


def _fit(seg: str, a: int, b: int, max_chars: int, base: int) -> list[tuple[int, int]]:
    a, b = _trim(seg, a, b)
    if b <= a or not HAS_CONTENT.search(seg[a:b]):
        return []
    if _latin(seg[a:b]):
        return _fit_words(seg, a, b, max(max_chars, MAX_LATIN_LINE_CHARS) if max_chars == MAX_LINE_CHARS else max_chars,
                          base)
    if b - a <= max_chars:
        return [(base + a, base + b)]
    # split at clause breaks, packing clauses up to max_chars
    pieces: list[tuple[int, int]] = []
    cur = a
    last_break = -1
    k = a
    while k < b:
        if seg[k] in "，,、：:—":
            last_break = k
        if k - cur + 1 > max_chars:
            cut = last_break if last_break > cur else cur + max_chars
            pa, pb = _trim(seg, cur, cut + (1 if cut == last_break else 0))
            if pb > pa and HAS_CONTENT.search(seg[pa:pb]):
                pieces.append((base + pa, base + pb))
            cur = cut + 1 if cut == last_break else cut
            last_break = -1
        k += 1
    pa, pb = _trim(seg, cur, b)
    if pb > pa and HAS_CONTENT.search(seg[pa:pb]):
        pieces.append((base + pa, base + pb))
    return pieces


def _fit_words(seg: str, a: int, b: int, max_chars: int, base: int) -> list[tuple[int, int]]:
    """Latin text: pieces of at most ``max_chars``, cut after a clause mark when one is near, else
    between words, never inside a word."""
    pieces: list[tuple[int, int]] = []
    cur = a
    while b - cur > max_chars:
        window = seg[cur:cur + max_chars + 1]
        cut = max((window.rfind(ch) + 1 for ch in ",;:—"), default=0)
        if cut < max_chars // 3:  # no clause mark in reach: the last space
            cut = window.rfind(" ")
        if cut <= 0:  # one word longer than a line: leave it whole
            nxt = seg.find(" ", cur + max_chars, b)
            cut = (nxt if nxt > 0 else b) - cur
        pa, pb = _trim(seg, cur, cur + cut)
        if pb > pa and HAS_CONTENT.search(seg[pa:pb]):
            pieces.append((base + pa, base + pb))
        cur += cut
    pa, pb = _trim(seg, cur, b)
    if pb > pa and HAS_CONTENT.search(seg[pa:pb]):
        pieces.append((base + pa, base + pb))
    return pieces
