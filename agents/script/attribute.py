"""Who says each line: speech tags, action beats, pronouns, vocatives, role nouns and alternation.

Order of evidence for a speech: the tag before it (``玄德曰：``, ``王胡轻蔑的抬起眼来说：``),
the tag after it (``“……”王胡轻蔑的抬起眼来说。``), a one-character tag (``飞曰`` -> 张飞),
a pronoun (``他说`` -> the last person who was the subject of a narration clause), a role noun
(``那老者道`` -> 老者), then alternation (two people trading lines) and finally the last
named person. ``Segment.how`` records which rule decided, for the report and the tests.

Modern web novels tag speech less and act more: the person who acts in the quote's paragraph
(an action beat before or after it: ``林晚把纸条拍在桌上。“……”``, ``“……”林晚愣住了。``) is the
speaker, every quote of a paragraph has one speaker unless a tag says otherwise (``“……”老周叹了
口气，“……”``), 他/她 go to the last person of that gender, a quote that opens with a name or title
(``“周师傅，……”``) is said TO that person, and an untagged exchange alternates between the two
people talking. ``Segment.confidence`` says how sure each rule is; the hybrid mode asks an LLM
about the lines below a threshold.

Who is in the exchange is kept as a short list of speakers, each once, newest last: people who act
in a paragraph without speaking join it (the next untagged line may be theirs), people who leave
(``江屿走后``, ``快递员走了``) drop out of it, the one a line or a tag turns to (``“林才人，……”``,
``朝许知夏点了点头：``) answers next, and someone who just came on (``助理小周敲门进来。``) speaks
before the alternation resumes. A speaker who names themself (``“我叫唐婉……”``) takes over the role
noun the chapter called them by (少女, 一个穿红裙子的女人), and only the emperor says 朕.
"""

from __future__ import annotations

import re
from collections import Counter

from agents.script.characters import _COMPOUND_SURNAMES, _SURNAMES, NAME_CHAR, Cast, plausible_name
from agents.script.people import ADDRESS, EMPEROR, ROLE_GENDER, ROLE_NOUNS, guess_gender, role_at
from agents.script.segment import POST_SPEECH, PRE_SPEECH, Segment

ROLE_SET = frozenset(ROLE_NOUNS)

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
_VOCATIVE = re.compile(r"^\s*(?P<v>[\u4e00-\u9fffA-Za-z]{1,5}?)(?:啊|呀|哪|呢)?[，,！!。…]")
_VOICE = re.compile(r"(?P<n>[\u4e00-\u9fffA-Za-z]{1,6})的(?:[^，。！？“”]{0,6})?声音")
_POST_BEFORE_NAME = re.compile(r"(?:[\u4e00-\u9fff]{0,4}的)?(?:" + "|".join(ROLE_NOUNS) + r"|助理|法医|管家|警员|财务总监)")
_HE_SHE = re.compile(r"^(?:[他她])")
_EXIT = re.compile(r"(?:走了|走后|离开了|离开后|出去了|退了出去|退下了|转身离开|转身走了|挂了电话)")
_PRONOUN_VOICE = re.compile(r"([他她])的(?:[^，。！？“”他她]{0,6})?声音")
# a speaker who names themself (我叫唐婉, 我是沈薇。): a role noun used until then was this person
_SELF_INTRO = re.compile(r"(?:^|[，,。！？!?…\s])(?:我叫|我是|我就是|本宫是|在下|我名叫)(?P<rest>[\u4e00-\u9fff]{2,4})")
# how sure each rule is (the hybrid mode sends lines below a threshold to an LLM)
CONFIDENCE = {"pre": 0.95, "post": 0.95, "tag": 0.9, "short": 0.9, "crowd": 0.85, "noun": 0.8, "role": 0.85,
              "beat": 0.85, "para": 0.85, "intro": 0.9, "pronoun": 0.7, "vocative": 0.65, "actor": 0.55, "alternation": 0.6, "last": 0.35,
              "none": 0.1}
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
            post = _POST_BEFORE_NAME.match(stripped)  # 宫女秋月, 助理小周, 身边的宫女秋月: the name after the post
            for a, _b, name in cast.find(stripped[:12] if post else stripped[:6]):
                if a == 0 or (post is not None and a == post.end()):
                    out.append((pos + offset + a, name))
                    break
        pos += len(clause)
    return out


def subject_of(cast: Cast, s: str, *, last: bool = False) -> str | None:
    """The speaker named in a speech tag: a clause-opening name (the last one, nearest the verb,
    when ``last``: 江屿走后，周桂兰冲女儿挤了挤眼睛：), else the first non-addressee."""
    if not s:
        return None
    starts = _clause_start_names(cast, s)
    if starts:
        return starts[-1 if last else 0][1]
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
    """Walks the book paragraph by paragraph, keeping who was last the subject and who spoke."""

    def __init__(self, cast: Cast, text: str = "") -> None:
        self.cast = cast
        self.text = text
        self.last_subject: str | None = None
        self.subject_para = -1
        self.gone: set[str] = set()  # who leaves in the paragraph being attributed
        self.cur_para = -1  # the paragraph being attributed
        self.last_addressee: str | None = None  # who the last line spoke to by name
        self.speakers: list[str] = []  # recent distinct speakers, newest last
        self.prev_speech_para = -10
        self.narration_since_speech = 0
        self.chapter = -1
        self.stats: Counter[str] = Counter()
        self.salience: dict[str, float] = {}
        self.para = -1
        self.recent = ""  # the last stretch of narration, to resolve 贡曰 to 闵贡
        self.actor: str | None = None  # who opens the narration paragraph just before (a quote-only one may be theirs)
        mentions = [(m.start(), cast.alias_to_name[m.group(0)]) for m in cast.pattern.finditer(text)] \
            if cast.pattern is not None and text else []
        self.gender = guess_gender(text, mentions) if mentions else {}
        self.leads = [p.name for p in cast.people if p.role == "lead" and not p.generic]
        self.actor_others: list[str] = []  # the other people who open clauses in that paragraph
        self.chapter_segs: list[Segment] = []  # speeches decided in this chapter (a self-introduction renames)
        self.renamed: dict[str, str] = {}  # role noun -> the name its speaker gave, for this chapter

    def _reset_chapter(self, chapter: int) -> None:
        self.chapter = chapter
        self.last_subject = None
        self.speakers = []
        self.prev_speech_para = -10
        self.narration_since_speech = 0
        self.salience = {}
        self.chapter_segs = []
        self.renamed = {}
        self.last_addressee = None

    def _mention(self, para: int, subjects: list[str], others: list[str]) -> None:
        if para != self.para:
            for k in list(self.salience):
                self.salience[k] *= 0.6
            self.para = para
        for name in subjects:
            self.salience[name] = self.salience.get(name, 0.0) + 2.0
        for name in others:
            self.salience[name] = self.salience.get(name, 0.0) + 1.0

    def _salient(self, exclude: tuple[str | None, ...] = (), gender: str | None = None) -> str | None:
        ranked = sorted(self.salience.items(), key=lambda kv: -kv[1])
        for name, _v in ranked:
            if name in exclude:
                continue
            if gender and self.gender.get(name, gender) != gender:
                continue
            return name
        if not ranked and self.last_subject not in exclude:
            return self.last_subject
        return None

    def narration(self, seg: Segment, text: str) -> None:
        if seg.chapter != self.chapter:
            self._reset_chapter(seg.chapter)
        body = text[seg.start:seg.end]
        starts = _clause_start_names(self.cast, body)
        found = self.cast.find(body)
        if starts:
            self.last_subject = starts[-1][1]
            self.subject_para = seg.para
        elif found:
            self.last_subject = self.last_subject or found[-1][2]
        subject_names = [n for _p, n in starts]
        self._mention(seg.para, subject_names, [n for _a, _b, n in found])
        # 江屿走后 / 快递员走了: who leaves is out of the exchange
        gone = [n for _a, b, n in found if _EXIT.match(body, b)]
        gone += [r for r in self.speakers if r in ROLE_SET and r in body and _EXIT.match(body, body.find(r) + len(r))]
        self.gone.update(gone)
        self.speakers = [x for x in self.speakers if x not in gone]
        self.recent = (self.recent + body)[-1500:]
        tag_only = len(body) <= 24 and (PRE_SPEECH.search(body) or POST_SPEECH.match(body))
        if not tag_only:
            self.narration_since_speech += len(body)

    # -- evidence -----------------------------------------------------------------------------
    def _pronoun(self, tag: str, addressee: str | None) -> str | None:
        m = _PRONOUN.search(tag)
        if not m:
            return None
        gender = "f" if "她" in m.group(0) else ("m" if "他" in m.group(0) else None)
        who = None
        subj = self.last_subject
        here = self.subject_para == self.cur_para  # named as a subject in this very paragraph
        if subj and subj != addressee and (gender is None or self.gender.get(subj, gender) == gender) \
                and (self.narration_since_speech >= 40 or here):
            who = subj  # 他 is first of all the last subject of the narration
        if who is None and gender and self.narration_since_speech < 40:
            # in an exchange between a man and a woman, 他/她 picks the one of that gender
            talk = [s for s in self.speakers[-2:] if s != addressee and self.gender.get(s) == gender]
            if len(talk) == 1 and len(self.speakers) >= 2:
                return talk[0]
        who = who or self._salient(exclude=(addressee,), gender=gender)
        if who is None:
            # 他 before anyone is named in the chapter: the book's lead of that gender
            who = next((n for n in self.leads if n != addressee and (gender is None or self.gender.get(n, gender) == gender)),
                       None)
        if who and self.speakers and who == self.speakers[-1] and self.narration_since_speech < 40 and not here:
            other = next((s for s in reversed(self.speakers[:-1]) if s != who and s != addressee
                          and (gender is None or self.gender.get(s, gender) == gender)), None)
            if other:
                return other
        return who

    def _from_tag(self, tag: str, *, is_pre: bool, addressee: str | None = None) -> tuple[str | None, str]:
        if is_pre:
            # the sentence that ends in the tag decides: 许知秋起身去开门。一个快递员……说：
            sentence = re.split(r"[。！？!?]", tag.rstrip())[-1]
            if sentence.strip() and sentence.strip() != tag.strip():
                who = subject_of(self.cast, sentence, last=True)
                if who and who != addressee:
                    return who, "pre"
                role = self._role(sentence)
                if role and role != addressee:
                    return role, "role"
        who = subject_of(self.cast, tag, last=is_pre)
        if who and who != addressee:
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
        voice = _PRONOUN_VOICE.search(tag)
        if voice:  # 身后传来他的声音：“……”
            who = self._pronoun(voice.group(1), addressee)
            if who:
                return who, "pronoun"
        role = self._role(tag)
        if role:
            return role, "role"
        bare = _BARE_TAG.search(compact) if is_pre else _BARE_POST.match(compact)
        if bare and plausible_name(bare.group("n")) and bare.group("n")[-1] not in "大厉高低冷再又便亦乃遂忙急笑怒叹呼叫":
            name = bare.group("n")
            longer = next((n for n in self.cast.alias_to_name if len(n) > len(name) and n.startswith(name)
                           and compact.startswith(n)), None)
            name = longer or name
            looks_named = self.cast.canonical(name) is not None or (name[0] in _SURNAMES and len(name) <= 3)
            if name not in ADDRESS and looks_named and not re.search(r"有人|[外里中内]", name):
                return self.cast.canonical(name) or name, "tag"
        if _CROWD.search(tag):
            return CROWD, "crowd"
        nouns = list(_ROLE_NOUN.finditer(tag))
        if nouns:
            noun = nouns[-1].group("n")
            return self.cast.canonical(noun) or noun, "noun"
        who = self._pronoun(tag, addressee)
        if who:
            return who, "pronoun"
        return None, ""

    def _role(self, tag: str) -> str | None:
        """A role noun that opens the tag (一个保安…, 他的对手…) or whose voice it is (小尼姑的带哭的声音)."""
        clause = _LEADERS.sub("", re.split(r"[，,。！？；：:]", tag.strip())[0])
        role = role_at(clause)
        if role and not self.cast.find(clause[:clause.find(role)] if role in clause else ""):
            return self.cast.canonical(role) or role
        v = _VOICE.search(tag)
        if v:
            tail = v.group("n")
            for a, _b, name in self.cast.find(tail):
                if a + len(name) >= len(tail) - 1:
                    return name
            r = next((r for r in (role_at(tail[k:]) for k in range(len(tail))) if r), None)
            if r:
                return self.cast.canonical(r) or r
        return None

    def _beat(self, narration: str, addressee: str | None, *, last: bool) -> tuple[str | None, str]:
        """The person acting in a stretch of narration: its last (before a quote) or first clause's subject."""
        if last:
            # the sentence right before the quote first: 许知秋起身去开门。一个快递员……地说：“……”
            sentences = [x for x in re.split(r"(?<=[。！？!?])", narration) if x.strip()]
            if len(sentences) > 1:
                who, how = self._beat(sentences[-1], addressee, last=True)
                if who and how != "pronoun":
                    return who, how
        starts = _clause_start_names(self.cast, narration)
        if starts:
            who = starts[-1][1] if last else starts[0][1]
            if who != addressee and (last or starts[0][0] <= 2):
                return who, "beat"
        first = _LEADERS.sub("", narration.lstrip())
        clauses = [c for c in re.split(r"[，,。！？；：:]", narration) if c.strip()]
        role = self._role(clauses[-1] if last and clauses else narration)
        if role is None and last:
            # 少女转过头来，一双眼睛又黑又亮。“……”: the nearest clause a role noun opens
            role = next((r for r in (self._role(c) for c in reversed(clauses[:-1])) if r), None)
        if role and role != addressee:
            return role, "role"
        head = first if not last else (_LEADERS.sub("", clauses[-1].lstrip()) if clauses else "")
        if _HE_SHE.match(head):
            pron = self._pronoun(head[:1], addressee)
            if pron:
                return pron, "pronoun"
        return None, ""

    def _addressee(self, quote: str) -> str | None:
        if quote.lstrip().startswith(("皇上", "陛下", "万岁")) and EMPEROR in self.cast.alias_to_name:
            return EMPEROR  # 皇上若想说……: said to the emperor
        m = _VOCATIVE.match(quote)
        if not m:
            return None
        v = m.group("v")
        name = self.cast.canonical(v)
        if name:
            return name
        return "?" if v in ADDRESS else None

    def _partner(self, addressee: str | None, close: bool) -> tuple[str, str]:
        """Who speaks an untagged line: the other of the two people talking, never the one addressed."""
        actor = self.actor
        if actor and actor != addressee and actor not in self.speakers[-2:]:
            return actor, "actor"  # 助理小周敲门进来。/“顾总，……”: who just came on acts and speaks
        if close and self.last_addressee and self.last_addressee not in (addressee, self.speakers[-1:][0] if self.speakers else None):
            return self.last_addressee, "alternation"  # “林才人，……？” / “略懂一二。”: the one spoken to answers
        if close and len(self.speakers) >= 2:
            who = self.speakers[-2]
            if who == addressee:
                who = self.speakers[-1]
            if who != addressee:
                return who, "alternation"
        last = self.speakers[-1] if self.speakers else None
        if actor and actor != addressee and not close:
            return actor, "actor"
        if addressee not in (None, "?"):
            if last and last != addressee and close:
                return last, "vocative"
            other = self._salient(exclude=(addressee,))
            if other:
                return other, "vocative"
        if close and last:
            other = self._salient(exclude=(last, addressee))
            if other:
                return other, "alternation"
        other = self._salient(exclude=(addressee,))
        if other:
            return other, "last"
        return UNKNOWN, "none"

    # -- a paragraph ------------------------------------------------------------------------------
    def paragraph(self, segs: list[Segment], text: str) -> None:
        self.cur_para = segs[0].para
        self.gone = set()
        if segs[0].chapter != self.chapter:
            self._reset_chapter(segs[0].chapter)
        if all(s.kind != "speech" for s in segs):
            for seg in segs:
                self.narration(seg, text)
            body = "".join(text[s.start:s.end] for s in segs)
            actor, rule = self._beat(body, None, last=True)
            self.actor = actor if actor and rule != "pronoun" else None
            self.actor_others = list(dict.fromkeys(n for _p, n in _clause_start_names(self.cast, body) if n != self.actor))
            return
        decided: list[tuple[Segment, str, str]] = []
        pending: list[Segment] = []
        before = ""  # narration of this paragraph since the last quote
        narration = ""  # all of this paragraph's narration
        for seg in segs:
            if seg.kind != "speech":
                self.narration(seg, text)
                before += text[seg.start:seg.end]
                narration += text[seg.start:seg.end] + "。"
                continue
            addressee = self._addressee(text[seg.start:seg.end])
            prev = decided[-1] if decided else None
            who: str | None
            tagged = PRE_SPEECH.search(before) is not None or before.rstrip().endswith(("：", ":"))
            if prev is not None and before.strip() and not tagged and prev[0].post.strip() and \
                    prev[0].post.strip().startswith(before.strip()[:6]) and prev[2] != "para":
                who, how = prev[1], "para"  # “……”老周叹了口气，“……”: the tag between serves both halves
            else:
                who, how = self._evidence(seg, before, addressee)
            before = ""
            if who is None:
                pending.append(seg)
            else:
                decided.append((seg, who, how))
        close = segs[0].para - self.prev_speech_para <= 2 and self.narration_since_speech < 60
        if pending and decided:
            for seg in pending:
                # one speaker per paragraph: the nearest quote with its own evidence
                nearest = min(decided, key=lambda d: abs(d[0].start - seg.start))
                decided.append((seg, nearest[1], "para"))
        elif pending:
            for seg in pending:
                who, how = self._partner(self._addressee(text[seg.start:seg.end]), close)
                who = self.renamed.get(who, who)
                if how == "actor":
                    for other in self.actor_others:  # 苏念推开门。顾景深站在窗前。“……”: 苏念 is the one he talks to
                        self._join(other)
                decided.append((seg, who, how))
                self._spoke(who)
        decided = self._introductions([(seg, self.renamed.get(who, who), how) for seg, who, how in decided], text)
        # people acting in the paragraph who do not speak in it are in the exchange: the next untagged
        # line may be theirs (萧寒放下酒碗。那汉子……：“看什么看？” / “看你的手。”)
        said = {who for _s, who, _h in decided}
        for _p, name in _clause_start_names(self.cast, narration):
            if name not in said and name not in self.gone:
                self._join(name)
        for seg, who, how in sorted(decided, key=lambda d: d[0].start):
            seg.speaker, seg.how, seg.confidence = who, how, CONFIDENCE.get(how, 0.5)
            self.stats[how] += 1
            self.chapter_segs.append(seg)
            if who in ROLE_GENDER:
                self.gender.setdefault(who, ROLE_GENDER[who])
            if how not in ("alternation", "vocative", "last", "none", "actor"):
                self._spoke(who)
        if decided:
            self.prev_speech_para = segs[0].para
            self.narration_since_speech = 0
            last_seg, last_who, _h = max(decided, key=lambda d: d[0].start)
            to = self._addressee(text[last_seg.start:last_seg.end])
            if to in (None, "?"):  # 男人朝许知夏点了点头：“……”: the tag names who is spoken to
                to = next((n for a, _b, n in self.cast.find(last_seg.pre) if _ADDRESSEE_BEFORE.search(last_seg.pre[:a])),
                          to)
            self.last_addressee = to if to not in (None, "?", last_who) else None
        self.actor = None

    def _evidence(self, seg: Segment, before: str, addressee: str | None) -> tuple[str | None, str]:
        pre_is_tag = bool(seg.pre) and (PRE_SPEECH.search(seg.pre) is not None or seg.pre.rstrip().endswith(("：", ":")))
        post_is_tag = bool(seg.post) and POST_SPEECH.match(seg.post) is not None
        if pre_is_tag:
            who, how = self._from_tag(seg.pre, is_pre=True, addressee=addressee)
            if who:
                return who, how
        if post_is_tag:
            who, how = self._from_tag(seg.post, is_pre=False, addressee=addressee)
            if who:
                return who, how
        if seg.post:
            who, how = self._beat(seg.post, addressee, last=False)
            if who:
                return who, how
        if before.strip():
            who, how = self._beat(before, addressee, last=True)
            if who:
                return who, how
        return None, ""

    def _introductions(self, decided: list[tuple[Segment, str, str]], text: str) -> list[tuple[Segment, str, str]]:
        """A speaker who names themself (``“我叫唐婉……”``): the line is theirs, and the role noun
        the chapter called them by until then (少女, 一个穿红裙子的女人) becomes that name."""
        for seg, who, how in list(decided):
            quote = text[seg.start:seg.end]
            m = _SELF_INTRO.search(quote)
            found = self.cast.find(m.group("rest")) if m else []
            if m and found and found[0][0] == 0 and m.group("rest")[found[0][1]:found[0][1] + 1] != "的":
                name = found[0][2]
            elif "朕" in quote and EMPEROR in self.cast.alias_to_name and how not in ("pre", "post", "tag", "short"):
                name = EMPEROR  # only the emperor says 朕
                self.gender.setdefault(name, "m")
            else:
                continue
            gender = self.gender.get(name)
            role: str | None = None
            if who in ROLE_SET and (how in ("role", "noun", "beat") or (gender and ROLE_GENDER.get(who) == gender)):
                role = who
            elif all(s.speaker != name for s in self.chapter_segs):
                # someone new to the chapter: the one role noun of their gender (or the one role noun) that spoke
                roles = {s.speaker for s in self.chapter_segs if s.speaker in ROLE_SET
                         and (gender is None or ROLE_GENDER.get(s.speaker) == gender)}
                role = roles.pop() if len(roles) == 1 else None
            if role:
                self.renamed[role] = name
                for s in self.chapter_segs:
                    if s.speaker == role:
                        s.speaker = name
                self.speakers = [name if x == role else x for x in self.speakers]
                self.salience[name] = self.salience.get(name, 0.0) + self.salience.pop(role, 0.0)
            decided = [(s, name if w == who else w, "intro" if s is seg else h) for s, w, h in decided]
        return decided

    def _join(self, who: str) -> None:
        """``who`` takes part in the exchange without speaking now: the next turn may be theirs."""
        if who in self.speakers:
            self.speakers.remove(who)
        self.speakers.append(who)
        self.speakers = self.speakers[-4:]

    def _spoke(self, who: str) -> None:
        self.salience[who] = self.salience.get(who, 0.0) + 1.0
        if not self.speakers or self.speakers[-1] != who:
            # newest last, each person once: the one before the last speaker is their partner
            self.speakers = [x for x in self.speakers if x != who][-3:] + [who]


def attribute(segments: list[Segment], text: str, cast: Cast) -> Counter[str]:
    """Fill ``speaker``, ``how`` and ``confidence`` of every speech segment; returns how many each rule decided."""
    att = Attributor(cast, text)
    i = 0
    while i < len(segments):
        j = i + 1
        while j < len(segments) and segments[j].para == segments[i].para:
            j += 1
        att.paragraph(segments[i:j], text)
        i = j
    return att.stats
