"""Who says each line: speech tags, one-character tags, pronouns, role nouns and alternation.

Order of evidence for a speech: the tag before it (``玄德曰：``, ``王胡轻蔑的抬起眼来说：``),
the tag after it (``“……”王胡轻蔑的抬起眼来说。``), a one-character tag (``飞曰`` -> 张飞),
a pronoun (``他说`` -> the last person who was the subject of a narration clause), a role noun
(``那老者道`` -> 老者), then alternation (two people trading lines) and finally the last
named person. ``Segment.how`` records which rule decided, for the report and the tests.
"""

from __future__ import annotations

import re
from collections import Counter

from agents.script.characters import _COMPOUND_SURNAMES, _SURNAMES, NAME_CHAR, Cast, plausible_name
from agents.script.segment import POST_SPEECH, PRE_SPEECH, Segment

_ADDRESSEE_BEFORE = re.compile(r"(?:对|向|谓|与|和|跟|问|叫|唤|朝|同|给|劝|拜|令|命|教|请|骂|望着|对着|指着|见|替|随|辞|别|告诉|吩咐|分付)$")
_PRONOUN = re.compile(r"(?:^|[，,。；：\s]|[却便又也就只遂乃])(?:他|她|那厮|此人|其人)|(?<![A-Za-z])(?:[Hh]e|[Ss]he)(?![A-Za-z])")
_FIRST_PERSON = re.compile(r"自言自语|自语|独自")
_ROLE_NOUN = re.compile(
    r"(?:那|这|一个|一位|一|有个|有一个|那个|这个|众)(?P<n>[\u4e00-\u9fff]{0,2}?(?:老者|老人|老头子|妇人|女子|汉子|小厮|童子|和尚|道士|小妖|"
    r"官员|使者|长老|大王|差人|兵丁|家人|丫鬟|酒保|店家|掌柜|伙计|老汉|妖精|怪物|妖怪|土地|山神|侍者|猴|人|将|官|僧|女|妇|兵|卒|吏|童|仆|婢|客|叟))"
    r"(?:[^，。！？]{0,8}?)(?:说道|说|道|曰|问|叫|喊|答|应|笑|喝)"
)
_CROWD = re.compile(r"众(?:人|将|官|猴|妖|僧|军|臣)?(?:都|齐|一齐|皆)?(?:[^，。！？]{0,4})(?:道|曰|说|叫|喊|应)")
_LEADERS = re.compile(r"^(?:却说|且说|话说|只见|忽见|但见|又见|只听得|只听|忽听得|然而|但是|可是|所以|因为|虽然|只是|并且|而且|于是|那|这|而|却|又|便|就|也|遂|乃|因|但|忽|只|早有|当下)+")
_SINGLE_TAG = re.compile(r"(?:^|[，。！？”」：\s])(" + NAME_CHAR + r")(?:笑|怒|叹|急|忙|亦|乃|又|便|大笑|大喜|大惊|大怒|大呼|大叫|厉声|叱|应|再拜|拜)?(?:曰|道|问曰|答曰|叫曰|笑曰|问|答|言)[：:]?\s*$")
_BARE_TAG = re.compile(
    r"(?:^|[，,。；;：:\s])(?P<n>" + NAME_CHAR + r"{2,4}?)(?:笑|怒|叹|急|忙|亦|乃|又|便|遂|大笑|大喜|大惊|大怒|大呼|大叫|厉声|低声|"
    r"高声|冷笑|再拜|拜|答|应|回|出|叱|喝)?(?:曰|道|问|说|言|叫|呼)[：:]?\s*$"
)
_BARE_POST = re.compile(
    r"^(?P<n>" + NAME_CHAR + r"{2,4}?)(?:[^，。！？“”]{0,10}?)(?:说道|说|道|曰|问|答|喊|叫|嚷|笑道|骂|应)[了着]?\s*(?:[。，,！!？?]|$)"
)
_SURNAME_CLASS = "(?:" + "|".join(_COMPOUND_SURNAMES) + "|[" + "".join(sorted(_SURNAMES)) + "])"
CROWD = "众人"
UNKNOWN = "路人"


def _clause_start_names(cast: Cast, s: str) -> list[tuple[int, str]]:
    """Names that open a clause of ``s`` (its subjects), in order."""
    out: list[tuple[int, str]] = []
    pos = 0
    for clause in re.split(r"([，,。！？；;：:\s]+)", s):
        if clause and not re.fullmatch(r"[，,。！？；;：:\s]+", clause):
            stripped = _LEADERS.sub("", clause)
            offset = len(clause) - len(stripped)
            for a, _b, name in cast.find(stripped[:6]):
                if a == 0:
                    out.append((pos + offset, name))
                    break
        pos += len(clause)
    return out


def subject_of(cast: Cast, s: str) -> str | None:
    """The speaker named in a speech tag: a clause-opening name, else the first non-addressee."""
    if not s:
        return None
    starts = _clause_start_names(cast, s)
    if starts:
        return starts[0][1]
    listed_object = False
    for a, _b, name in cast.find(s):
        before = s[:a]
        if before.endswith(("、", "和", "与", "及")) and listed_object:
            continue  # 叫八戒、沙僧问道: the list after 叫 is spoken to
        if _ADDRESSEE_BEFORE.search(before):
            listed_object = True
            continue
        return name
    return None


class Attributor:
    """Walks the segments of a book in order, keeping who was last the subject and who spoke."""

    def __init__(self, cast: Cast) -> None:
        self.cast = cast
        self.last_subject: str | None = None
        self.speakers: list[str] = []  # recent distinct speakers, newest last
        self.prev_speech_para = -10
        self.narration_since_speech = 0
        self.chapter = -1
        self.stats: Counter[str] = Counter()
        self.salience: dict[str, float] = {}
        self.para = -1
        self.recent = ""  # the last stretch of narration, to resolve 贡曰 to 闵贡

    def _reset_chapter(self, chapter: int) -> None:
        self.chapter = chapter
        self.last_subject = None
        self.speakers = []
        self.prev_speech_para = -10
        self.narration_since_speech = 0
        self.salience = {}

    def _mention(self, para: int, subjects: list[str], others: list[str]) -> None:
        if para != self.para:
            for k in list(self.salience):
                self.salience[k] *= 0.6
            self.para = para
        for name in subjects:
            self.salience[name] = self.salience.get(name, 0.0) + 2.0
        for name in others:
            self.salience[name] = self.salience.get(name, 0.0) + 1.0

    def _salient(self) -> str | None:
        if not self.salience:
            return self.last_subject
        return max(self.salience.items(), key=lambda kv: kv[1])[0]

    def narration(self, seg: Segment, text: str) -> None:
        if seg.chapter != self.chapter:
            self._reset_chapter(seg.chapter)
        body = text[seg.start:seg.end]
        starts = _clause_start_names(self.cast, body)
        found = self.cast.find(body)
        if starts:
            self.last_subject = starts[-1][1]
        elif found:
            self.last_subject = self.last_subject or found[-1][2]
        subject_names = [n for _p, n in starts]
        self._mention(seg.para, subject_names, [n for _a, _b, n in found])
        self.recent = (self.recent + body)[-1500:]
        tag_only = len(body) <= 24 and (PRE_SPEECH.search(body) or POST_SPEECH.match(body))
        if not tag_only:
            self.narration_since_speech += len(body)

    def _from_tag(self, tag: str, *, is_pre: bool) -> tuple[str | None, str]:
        who = subject_of(self.cast, tag)
        if who:
            return who, "pre" if is_pre else "post"
        compact = re.sub(r"\s+", "", tag)
        m = _SINGLE_TAG.search(compact) if is_pre else None
        if m and m.group(1) in self.cast.short_tags:
            return self.cast.short_tags[m.group(1)], "short"
        if m:
            # 贡曰 after 闵贡 was named: the full name is in the recent narration
            ch = m.group(1)
            found = None
            for fm in re.finditer(r"(" + _SURNAME_CLASS + re.escape(ch) + r")", self.recent):
                if plausible_name(fm.group(1)):
                    found = fm.group(1)
            if found:
                return self.cast.canonical(found) or found, "short"
        bare = _BARE_TAG.search(compact) if is_pre else _BARE_POST.match(compact)
        if bare and plausible_name(bare.group("n")) and bare.group("n")[-1] not in "大厉高低冷再又便亦乃遂忙急笑怒叹呼叫":
            name = bare.group("n")
            return self.cast.canonical(name) or name, "tag"
        if _CROWD.search(tag):
            return CROWD, "crowd"
        nouns = list(_ROLE_NOUN.finditer(tag))
        if nouns:
            noun = nouns[-1].group("n")
            return self.cast.canonical(noun) or noun, "noun"
        salient = self._salient()
        if _PRONOUN.search(tag) and salient:
            if self.speakers and salient == self.speakers[-1] and len(self.speakers) >= 2 \
                    and self.narration_since_speech < 40:
                return self.speakers[-2], "pronoun"
            return salient, "pronoun"
        return None, ""

    def speech(self, seg: Segment) -> None:
        if seg.chapter != self.chapter:
            self._reset_chapter(seg.chapter)
        who: str | None = None
        how = ""
        pre_is_tag = bool(seg.pre) and (PRE_SPEECH.search(seg.pre) is not None or seg.pre.rstrip().endswith(("：", ":")))
        post_is_tag = bool(seg.post) and POST_SPEECH.match(seg.post) is not None
        if pre_is_tag:
            who, how = self._from_tag(seg.pre, is_pre=True)
        if who is None and post_is_tag:
            who, how = self._from_tag(seg.post, is_pre=False)
        if who is None:
            close = seg.para - self.prev_speech_para <= 1 and self.narration_since_speech < 40
            if close and len(self.speakers) >= 2:
                who, how = self.speakers[-2], "alternation"
            elif self._salient():
                who, how = self._salient() or UNKNOWN, "last"
            else:
                who, how = UNKNOWN, "none"
        seg.speaker = who
        seg.how = how
        self.stats[how] += 1
        if not self.speakers or self.speakers[-1] != who:
            self.speakers.append(who)
            self.speakers = self.speakers[-4:]
        self.prev_speech_para = seg.para
        self.narration_since_speech = 0


def attribute(segments: list[Segment], text: str, cast: Cast) -> Counter[str]:
    """Fill ``speaker`` and ``how`` of every speech segment; returns how many were decided by each rule."""
    att = Attributor(cast)
    for seg in segments:
        if seg.kind == "speech":
            att.speech(seg)
        else:
            att.narration(seg, text)
    return att.stats
