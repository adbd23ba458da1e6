"""Find the people of a novel and merge their aliases, with no model.

Candidates come from where people show up in Chinese prose: the subject of a speech verb
(``玄德曰``, ``王胡轻蔑的抬起眼来说``), titled names (``赵太爷``, ``邹七嫂``), and courtesy-name
sentences (``姓刘名备，字玄德``). A candidate grows while the next character almost always
follows it (``孙悟`` -> ``孙悟空``) and stops where what follows varies (``行者`` | 笑/道/闻...).
Aliases are merged only where the text shows it: a name minus its surname (``悟空`` in
``孙悟空``), a surname plus a title (``孙行者``, ``曹丞相``) given to the dominant bearer of that
surname, courtesy names, ``又称为X`` after the person just named, and one-character references
in speech tags (``飞曰`` -> ``张飞``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from agents.script.people import (
    ADDRESS,
    EMPEROR,
    modern_names,
    nickname_links,
    set_surnames,
    title_links,
)

log = logging.getLogger(__name__)

NAME_CHAR = r"[\u4e00-\u9fffA-Za-z]"
_NAME_CHAR_RE = re.compile(NAME_CHAR)

# Leading words that come before a subject at the start of a clause.
_LEADERS = sorted([
    "却说", "且说", "话说", "再说", "却表", "且表", "只见", "忽见", "但见", "又见", "只听得", "只听", "忽听得",
    "忽听", "忽然", "此时", "当时", "于是", "随即", "然后", "后来", "原来", "须臾", "少时", "正是", "只是", "那个",
    "这个", "那些", "这些", "一个", "当下", "次日", "是夜", "当夜", "早有", "那", "这", "却", "又", "便", "就",
    "也", "遂", "乃", "因", "但", "忽", "只", "早", "惟", "独", "这时", "那时", "连", "见", "听",
], key=len, reverse=True)
_LEADER_RE = re.compile("^(?:" + "|".join(_LEADERS) + ")+")

# A name never starts with these.
_BAD_FIRST = set("他她我你您它的了是在不也都就还这那哪谁么吗呢吧啊呀个众些各每其此彼有无没把被将从向对与和同跟给让"
                 "令使教请今昨明前后上下里外中内已未曾又便却只但而且因所以若如虽然即乃遂才刚正再最更很太甚极都"
                 "一几多少半全整自于"
                 # verbs that open a clause before an object: 引兵, 叫做, 问孔明, 唤赵云
                 "引入出往等看变叫唤问得着回拿取到来去做作打杀走跑坐起送带领率提斩擒追赶投降救拘伙好忙急连商议听闻说道"
                 "笑哭喝骂见蒙人")
_NUMERALS = set("零〇一二三四五六七八九十百千万两")
_PLACE_LAST = set("州郡县城国山洞府界省市乡镇村庄河江湖海关岭峰")
_TROOP_LAST = set("兵军马卒")
_DIRECTIONS = set("东西南北")
# ...and never end with these (they are particles, verbs or position words).
_BAD_LAST = set("的了着过是在也又不和与同对向说道曰问叫喊笑看见听闻便就都还已要会能可把被将从到来去上下里中外内们于后皆背"
                "个些么吗呢吧啊呀哩得地之乎者也矣焉哉")
_BAD_LAST_OK = {"行者", "孙行者", "使者", "学者", "长者", "老者", "侍者", "儒者"}

# Not people, or generic referents that must never become a lead or an alias.
_STOP = {
    "大呼", "厉声", "大喝", "高声", "低声", "冷笑", "十分", "大小", "收拾", "星夜", "挺枪", "随后", "尽皆", "山背后", "背后", "金光", "一齐", "两边", "身边",
    "山门", "宝贝", "行李", "分付", "吩咐", "文武", "安排", "毫毛", "许多", "扯住", "开门", "四众", "商议", "军马", "人马", "大军", "先锋", "东吴", "师徒", "妖魔", "如来", "东土", "云头", "兵马",
    "我们", "你们", "他们", "她们", "咱们", "自己", "大家", "众人", "二人", "三人", "两人", "两个", "三个", "一人",
    "左右", "先生们", "师父", "徒弟", "老孙", "老猪", "弟子", "小人", "在下", "本官", "天下", "朝廷", "如今", "今日",
    "明日", "此人", "其人", "那人", "这人", "何人", "此时", "当时", "于是", "不知", "只是", "原来", "不敢", "不可",
    "不得", "如此", "怎么", "什么", "甚么", "这个", "那个", "那里", "这里", "正是", "只见", "便是", "就是", "果然",
    "虽然", "然而", "因为", "所以", "不如", "只得", "忽然", "连忙", "急忙", "大喜", "大怒", "大惊", "大笑", "笑道",
    "大叫", "高叫", "叫道", "问道", "答道", "说道", "主公", "陛下", "丞相", "将军", "天子", "皇帝", "圣上", "万岁",
    "贤弟", "兄弟", "哥哥", "大哥", "妈妈", "爹爹", "娘子", "老爷", "太太", "小姐", "公子", "姑娘", "夫人", "众将",
    "众官", "众臣", "军士", "小校", "探子", "百姓", "汝等", "吾等", "我等", "尔等", "某等", "此事", "此言", "其中",
}
# Role words: fine as a speaker (an extra), never a lead and never merged into someone.
GENERIC = {
    "老者", "老人", "老头子", "妇人", "女子", "汉子", "小厮", "童子", "和尚", "道士", "小妖", "众妖", "众猴",
    "众僧", "官员", "使者", "长老", "大王", "行者", "太爷", "老尼姑", "地保", "差人", "兵丁", "家人", "丫鬟",
    "酒保", "店家", "掌柜", "伙计", "老汉", "妖精", "怪物", "妖怪", "土地", "山神", "侍者", "路人",
    "魔王", "妖王", "老魔", "老妖", "大仙", "国王", "皇帝", "娘娘", "公主", "太子", "山君", "呆子", "师兄", "圣僧",
    "唐王", "玉帝", "菩萨", "佛祖", "妖邪", "爷爷", "老师", "军士", "小校", "探子",
}
# Titles of a family's members: 赵太爷 and 赵太太 are two people, not aliases of 赵白眼.
FAMILY_TITLES = {"太爷", "老爷", "少爷", "太太", "奶奶", "夫人", "小姐", "姑娘", "娘子", "大嫂", "大哥", "大爷",
                 "秀才", "举人", "员外", "妈", "婆", "伯", "叔", "郎", "兄", "生", "翁"}
# Titles that follow a surname: 赵太爷, 曹丞相, 孙行者.
TITLES = sorted([
    "太爷", "老爷", "少爷", "先生", "秀才", "举人", "太太", "奶奶", "夫人", "小姐", "姑娘", "娘子", "大嫂", "大哥",
    "大爷", "大王", "大圣", "将军", "丞相", "太守", "刺史", "都督", "元帅", "天师", "真人", "长老", "法师", "禅师",
    "和尚", "道士", "菩萨", "娘娘", "公主", "太子", "员外", "掌柜", "老板", "总裁", "少主", "掌门", "宗主", "皇叔",
    "国舅", "行者", "大仙", "天王", "星君", "公", "僧", "妈", "婆", "伯", "叔", "翁", "郎", "兄", "生",
], key=len, reverse=True)
_KIN = r"[一二三四五六七八九十大小老][嫂哥姐叔婶爷娘妹弟]"
_SURNAMES = set(
    "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜戚谢邹喻柏水窦章云苏潘葛奚范彭郎鲁韦昌马"
    "苗凤花方俞任袁柳酆鲍史唐费廉岑薛雷贺倪汤滕殷罗毕郝邬安常乐于时傅皮卞齐康伍余元卜顾孟平黄和穆萧尹姚邵湛"
    "汪祁毛禹狄米贝明臧计伏成戴谈宋茅庞熊纪舒屈项祝董梁杜阮蓝闵席季麻强贾路娄危江童颜郭梅盛林刁钟徐邱骆高夏猪"
    "蔡田樊胡凌霍虞万支柯昝管卢莫经房裘缪干解应宗丁宣贲邓郁单杭洪包诸左石崔吉钮龚程嵇邢滑裴陆荣翁荀羊於惠甄"
    "曲家封芮羿储靳汲邴糜松井段富巫乌焦巴弓牧隗山谷车侯宓蓬全郗班仰秋仲伊宫宁仇栾暴甘钭厉戎祖武符刘景詹束龙"
    "叶幸司韶郜黎蓟薄印宿白怀蒲邰从鄂索咸籍赖卓蔺屠蒙池乔阴胥能苍双闻莘党翟谭贡劳逄姬申扶堵冉宰郦雍却璩桑桂"
    "濮牛寿通边扈燕冀郏浦尚农温别庄晏柴瞿阎充慕连茹习宦艾鱼容向古易慎戈廖庾终暨居衡步都耿满弘匡国文寇广禄阙"
    "欧殳沃利蔚越夔隆师巩厍聂晁勾敖融冷訾辛阚简饶曾毋沙乜养鞠须丰巢关蒯相查后荆红游竺权逯盖益桓阿"
)
set_surnames(frozenset(_SURNAMES))
_COMPOUND_SURNAMES = ("诸葛", "司马", "夏侯", "欧阳", "上官", "东方", "公孙", "令狐", "皇甫", "慕容", "长孙", "宇文",
                      "尉迟", "独孤", "南宫", "西门", "轩辕", "端木", "太史", "呼延", "司徒", "司空", "淳于", "澹台")
_COURTESY_RE = re.compile(
    r"(?:[复覆]姓(?P<cs>[\u4e00-\u9fff]{2})|姓(?P<s>[\u4e00-\u9fff]))[，,]?\s*(?:单)?名(?P<g>[\u4e00-\u9fff]{1,2}?)"
    r"[，,]?\s*字(?P<z>[\u4e00-\u9fff]{2})"
)
_OBJ_CHARS = "见对与和同向叫问请拜随跟将把被给令命教唤望谓骂打杀救扶劝辞别"


@dataclass(slots=True)
class Person:
    name: str
    aliases: list[str] = field(default_factory=list)
    mentions: int = 0
    speeches: int = 0
    role: str = "supporting"
    generic: bool = False


@dataclass(slots=True)
class Cast:
    people: list[Person]
    alias_to_name: dict[str, str]
    pattern: re.Pattern[str] | None
    short_tags: dict[str, str] = field(default_factory=dict)  # 飞 -> 张飞, only in speech tags

    def find(self, s: str) -> list[tuple[int, int, str]]:
        """``(start, end, canonical name)`` for each name in ``s``, longest match first."""
        if self.pattern is None or not s:
            return []
        return [(m.start(), m.end(), self.alias_to_name[m.group(0)]) for m in self.pattern.finditer(s)]

    def canonical(self, alias: str) -> str | None:
        return self.alias_to_name.get(alias)

    def get(self, name: str) -> Person | None:
        for p in self.people:
            if p.name == name:
                return p
        return None


class NGramStats:
    """Counts of 1- to 5-grams of the story text, built once (about 1 s for a 2 MB novel)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.counts: dict[int, Counter[str]] = {}
        n = len(text)
        for k in (2, 3, 4):
            self.counts[k] = Counter(text[i:i + k] for i in range(n - k + 1))
        self._extra: dict[str, int] = {}
        self._near: dict[str, tuple[Counter[str], Counter[str]]] = {}

    def neighbours(self, w: str) -> tuple[Counter[str], Counter[str]]:
        """Characters before and after each occurrence of ``w`` (for names longer than 3)."""
        key = "\x00" + w
        cached = self._near.get(key)
        if cached is None:
            before: Counter[str] = Counter()
            after: Counter[str] = Counter()
            pos = self.text.find(w)
            while pos >= 0:
                if pos > 0:
                    before[self.text[pos - 1]] += 1
                end = pos + len(w)
                if end < len(self.text):
                    after[self.text[end]] += 1
                pos = self.text.find(w, end)
            cached = (before, after)
            self._near[key] = cached
        return cached

    def count(self, w: str) -> int:
        k = len(w)
        if k in self.counts:
            return self.counts[k][w]
        if w not in self._extra:
            self._extra[w] = self.text.count(w)
        return self._extra[w]


def _clause_starts(sentence: str) -> Iterable[str]:
    for clause in re.split(r"[，,、；;：:。！？!?\s]+", sentence):
        clause = _LEADER_RE.sub("", clause)
        if clause:
            yield clause


def _grow(stats: NGramStats, clause: str) -> str | None:
    """The name at the start of ``clause``: grow while the continuation is near certain."""
    if len(clause) < 2 or not _NAME_CHAR_RE.match(clause[0]) or not _NAME_CHAR_RE.match(clause[1]):
        return None
    if clause[0] in _BAD_FIRST:
        return None
    length = 2
    for cs in _COMPOUND_SURNAMES:
        if clause.startswith(cs) and len(clause) > 2 and _NAME_CHAR_RE.match(clause[2]):
            length = 3
            break
    while length < 4 and length < len(clause) and _NAME_CHAR_RE.match(clause[length]):
        here = stats.count(clause[:length])
        longer = stats.count(clause[: length + 1])
        if here and longer >= 0.66 * here:
            length += 1
        else:
            break
    return clause[:length]


def plausible_name(w: str) -> bool:
    """Could ``w`` be a person's name? (A filter, not a detector.)"""
    return _plausible(w) and w not in GENERIC_NOT_NAMES


GENERIC_NOT_NAMES = {"众人", "众将", "众官", "左右", "二人", "三人"}


def _plausible(w: str) -> bool:
    if w in _STOP or len(w) < 1 or w in _COMPOUND_SURNAMES:
        return False
    if not all(_NAME_CHAR_RE.match(c) for c in w) or any(c in "着了的得地" for c in w[1:-1]):
        return False
    compound = any(w.startswith(cs) and len(w) > len(cs) for cs in _COMPOUND_SURNAMES)
    if not compound:
        if w[0] in _BAD_FIRST or (w[0] in _DIRECTIONS and len(w) <= 3):
            return False
        if len(w) >= 2 and w[0] in _NUMERALS and w[1] in _NUMERALS:
            return False
        if w[-1] in _PLACE_LAST or (w[-1] in _TROOP_LAST and w not in {"白马", "龙马"}):
            return False
    if w[-1] in _BAD_LAST and w not in _BAD_LAST_OK and not any(w.endswith(t) for t in TITLES if len(t) > 1):
        return False
    return True


def _surname_of(w: str) -> str | None:
    for cs in _COMPOUND_SURNAMES:
        if w.startswith(cs) and len(w) > len(cs):
            return cs
    if w[0] in _SURNAMES and len(w) >= 2:
        return w[0]
    return None


def _title_form(w: str) -> bool:
    """赵太爷, 孙行者, 曹丞相: a surname and a title."""
    sur = _surname_of(w)
    if sur is None:
        return False
    rest = w[len(sur):]
    return rest in TITLES or bool(re.fullmatch(_KIN, rest))


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str, why: str = "") -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            log.debug("alias: %s ~ %s (%s)", a, b, why)
            self.parent[rb] = ra


def discover_cast(
    text: str,
    speech_contexts: list[tuple[str, str]],
    *,
    stats: NGramStats | None = None,
    max_people: int = 80,
    narration: list[tuple[int, int]] | None = None,
) -> Cast:
    """Find characters. ``speech_contexts`` holds ``(pre, post)`` narration around each speech;
    ``narration`` the spans of narration, where modern surname names are looked for."""
    stats = stats or NGramStats(text)
    n = len(text)
    min_count = max(3, n // 150_000)
    slot: Counter[str] = Counter()
    single: Counter[str] = Counter()  # 飞曰, 操曰: one-character speech tags
    for pre, post in speech_contexts:
        for sentence in (pre, post):
            if not sentence:
                continue
            for clause in _clause_starts(sentence):
                w = _grow(stats, clause)
                if w:
                    slot[w] += 1
        tag = re.sub(r"\s+", "", pre)
        m = re.search(r"(?:^|[，。！？”」：])(" + NAME_CHAR + r")(?:笑|怒|叹|急|忙|亦|乃|又|便)?(?:曰|道|问曰|答曰|叫曰|笑曰)[：:]?$", tag)
        if m and m.group(1) not in _BAD_FIRST and m.group(1) not in _NUMERALS:
            single[m.group(1)] += 1

    cands: dict[str, int] = {}
    origin: dict[str, str] = {}
    for w, k in slot.items():
        if k >= 2 and _plausible(w) and stats.count(w) >= min_count:
            cands[w] = stats.count(w)
            origin[w] = "speech"
    # titled names: 赵太爷, 邹七嫂, 吴妈
    title_rx = re.compile(r"(?:" + "|".join(_COMPOUND_SURNAMES) + r"|[" + "".join(sorted(_SURNAMES)) + r"])"
                          r"(?:" + "|".join(TITLES) + r"|" + _KIN + r")")
    titled = Counter(m.group(0) for m in title_rx.finditer(text))
    for w, k in titled.items():
        if k >= min_count and _plausible(w) and w not in cands:
            cands[w] = stats.count(w)
            origin[w] = "title"
    # courtesy names: 姓刘名备，字玄德
    courtesy: list[tuple[str, str]] = []
    courtesy_alias: set[str] = set()
    for m in _COURTESY_RE.finditer(text):
        sur = m.group("cs") or m.group("s")
        full = sur + m.group("g")
        z = m.group("z")
        courtesy.append((full, z))
        courtesy.append((full, sur + z))
        courtesy_alias.update((z, sur + z))
        for w in (full, z, sur + z):
            c = stats.count(w)
            if c >= 2 and w not in cands and _plausible(w):
                cands[w] = c
                origin[w] = "courtesy"
    # a surname in front of a known name: 孙+悟空, 唐+三藏, 猪+八戒
    two = {w for w in cands if len(w) == 2}
    for key, c in stats.counts[3].items():
        if c >= min_count and key[1:] in two and key not in cands and key[0] not in _BAD_FIRST \
                and (key[0] in _SURNAMES) and c >= 0.03 * cands[key[1:]] and _plausible(key):
            cands[key] = c
            origin[key] = "surname"

    # modern names: surname forms that open narration clauses (林晚, 老周, 林振海)
    modern: set[str] = set()
    if narration is not None:
        for w, c in modern_names(text, narration, stats.count, min_count=max(2, min_count - 1)).items():
            is_post = w in ("皇帝", "皇后", "太后", "太子")  # a post that is the person's name in a palace story
            if w not in ADDRESS and (w not in _STOP or is_post) and (w[-1] not in _BAD_LAST or is_post) \
                    and w[-1] not in _TROOP_LAST and (w[0] not in _BAD_FIRST or w[0] in "老小阿"):
                cands[w] = c
                origin[w] = "modern"
            modern.add(w)
    for w in [w for w in cands if w in ADDRESS]:
        cands.pop(w)  # forms of address and self-reference are never characters
    # drop fragments (孙悟 inside 孙悟空)
    # (longest first, so a fragment's fragment is judged against what is still standing; the
    # substrings of each standing name are indexed once instead of testing every pair)
    inside: dict[str, list[str]] = defaultdict(list)
    for longer in cands:
        for i in range(len(longer)):
            for j in range(i + 1, len(longer) + 1):
                if j - i < len(longer):
                    inside[longer[i:j]].append(longer)
    for w in sorted(cands, key=lambda w: (-len(w), w)):
        if any(cands.get(longer, 0) >= 0.8 * cands[w] for longer in inside.get(w, ())):
            cands.pop(w, None)
    # namehood: people are spoken to and about (见X, 对X, 与X), speak (X道) and start clauses;
    # verbs, things and idioms do not. A surname with a title (吴妈, 赵太爷) is a name by its form.
    for w in list(cands):
        if origin.get(w) in ("courtesy", "modern") or _title_form(w):
            continue
        c = cands[w]
        k = len(w) + 1
        if k > 4:
            before, after = stats.neighbours(w)
            obj = sum(before[x] for x in _OBJ_CHARS)
            sv = sum(after[v] for v in "道曰说问叫笑喝答云")
            cs = sum(before[x] for x in "，。！？：；”\n\u3000 ")
        else:
            table = stats.counts[k]
            obj = sum(table[x + w] for x in _OBJ_CHARS)
            sv = sum(table[w + v] for v in "道曰说问叫笑喝答云")
            cs = sum(table[x + w] for x in "，。！？：；”\n\u3000 ")
        score = (obj + min(sv, 0.2 * c) + 0.3 * cs) / c
        if obj + sv < 1 or score < 0.05 or (c >= 60 and obj < 2):
            cands.pop(w)

    uf = _Union()
    for w in cands:
        uf.find(w)
    generic = {w for w in cands if w in GENERIC}

    def group_total(root: str) -> int:
        return sum(cands[w] for w in cands if uf.find(w) == root)

    # 1. a name minus its surname (悟空 in 孙悟空), given to the dominant holder
    by_tail: dict[str, list[str]] = defaultdict(list)
    for w in cands:
        if len(w) >= 3:
            sur = _surname_of(w)
            if sur and len(w) - len(sur) >= 2 and w[len(sur):] in cands:
                by_tail[w[len(sur):]].append(w)
            if len(w) == 4 and w[2:] in cands:  # 齐天大圣 -> 大圣
                by_tail[w[2:]].append(w)
    for tail, holders in by_tail.items():
        holders = sorted(set(holders), key=lambda h: -cands[h])
        total = sum(cands[h] for h in holders)
        if cands[holders[0]] < 0.6 * total or holders[0] in generic:
            continue
        if tail in generic:
            # 行者 is a role word in general; here a titled holder owns it (孙行者)
            if _title_form(holders[0]) or len(holders) == 1:
                uf.union(holders[0], tail, "tail")
                generic.discard(tail)
        else:
            uf.union(holders[0], tail, "tail")

    # 2. courtesy names
    for full, z in courtesy:
        if full in cands and z in cands:
            uf.union(full, z, "courtesy")

    # 3. a surname with an epithet (孙行者, 曹丞相, 唐僧) goes to the dominant bearer of the surname;
    #    family titles (赵太爷, 赵太太) name different people and are left alone
    bearers_by_surname: dict[str, list[str]] = defaultdict(list)
    for w in cands:
        sur = _surname_of(w)
        if sur and not _title_form(w) and w not in generic and len(w) > len(sur):
            bearers_by_surname[sur].append(w)
    for w in sorted(cands, key=lambda x: -cands[x]):
        if not _title_form(w):
            continue
        sur = _surname_of(w) or ""
        if w[len(sur):] in FAMILY_TITLES or re.fullmatch(_KIN, w[len(sur):]):
            continue
        roots: Counter[str] = Counter()
        for b in bearers_by_surname.get(sur, []):
            r = uf.find(b)
            if r != uf.find(w):
                roots[r] = group_total(r)
        if not roots:
            continue
        top, top_total = roots.most_common(1)[0]
        if top_total >= 0.6 * sum(roots.values()) and top_total >= 0.5 * cands[w]:
            uf.union(top, w, "epithet")

    groups_map: dict[str, list[str]] = defaultdict(list)
    for w in cands:
        groups_map[uf.find(w)].append(w)
    people: list[Person] = []
    for members in groups_map.values():
        members = sorted(set(members), key=lambda w: (-cands[w], w))

        def formality(w: str) -> tuple[int, int, int]:
            sur = _surname_of(w)
            full = 1 if (sur and not _title_form(w) and len(w) - len(sur) in (1, 2) and w not in GENERIC
                         and w not in courtesy_alias) else 0
            return (full, cands[w], len(w))

        name = max(members, key=formality)
        people.append(Person(name=name, aliases=[m for m in members if m != name], mentions=_mentions(members, cands),
                             generic=all(m in generic for m in members)))
    # nicknames and titled forms that the text uses for one person (晚晚, 周师傅, 淑妃)
    names_now = [p.name for p in people if not p.generic]
    owner = {p.name: p for p in people}
    taken = {a for p in people for a in [p.name, *p.aliases]}
    surnamed: dict[str, str] = {}  # 王皇后, 柳贤妃: a surname before a person known by a post
    for name in names_now:
        if 2 <= len(name) <= 3 and name[0] not in _SURNAMES and name.endswith(("妃", "后", "帝", "嫔")):
            for m in re.finditer(r"([" + "".join(sorted(_SURNAMES)) + r"])" + re.escape(name), text):
                surnamed.setdefault(m.group(0), name)
    if EMPEROR in owner:
        surnamed["皇上"] = EMPEROR  # what the narration calls the emperor
    for links in (nickname_links(names_now), title_links(text, names_now), surnamed):
        for form, name in links.items():
            if form not in taken and stats.count(form) > 0 and owner.get(name) is not None \
                    and form not in GENERIC_NOT_NAMES:
                owner[name].aliases.append(form)
                taken.add(form)
    # one-character speech tags resolve to the person whose name ends with that character
    for ch, k in single.items():
        if k < 2:
            continue
        owners = sorted((p for p in people if not p.generic and any(a.endswith(ch) and len(a) >= 2 for a in [p.name, *p.aliases])),
                        key=lambda p: -p.mentions)
        if owners and (len(owners) == 1 or owners[0].mentions >= 2 * owners[1].mentions):
            if ch not in owners[0].aliases and ch != owners[0].name:
                owners[0].aliases.append(ch)
    people.extend(_english_people(text, speech_contexts, {a for p in people for a in [p.name, *p.aliases]}))
    people.sort(key=lambda p: (-p.mentions, p.name))
    people = people[:max_people]
    if people:
        named = [p for p in people if not p.generic]
        most = named[0].mentions if named else people[0].mentions
        for rank, p in enumerate(named):
            p.role = "lead" if rank == 0 or (rank < 3 and p.mentions >= 0.3 * most) else "supporting"
            if p.role != "lead" and p.mentions < 0.02 * most:
                p.role = "extra"
        for p in people:
            if p.generic:
                p.role = "extra"
    return build_cast(people)


# English speech tags name their speaker: "said Mary", "Mary replied", "John laughed."
_EN_NOT_NAMES = {
    "He", "She", "They", "I", "We", "You", "It", "The", "A", "An", "But", "And", "Then", "When", "As", "So", "This",
    "That", "There", "Here", "Now", "Yes", "No", "Oh", "Well", "What", "Why", "How", "Who", "Where", "If", "Still",
    "Just", "Even", "At", "In", "On", "For", "With", "After", "Before", "Suddenly", "Finally", "Later", "Everyone",
    "Nobody", "Someone", "Somebody", "Mother", "Father", "Chapter", "Part", "Book", "His", "Her", "Their", "My",
    "Our", "Your", "One", "Two", "Three",
}


def _english_people(text: str, speech_contexts: list[tuple[str, str]], known: set[str]) -> list[Person]:
    """People named in English speech tags, with their mentions in the text (whole words only).

    A one-word name that is a word of a longer name found here (``Mary`` of ``Mary Smith``) is its alias.
    """
    from agents.script.segment import EN_SPEECH_VERB

    who = r"(?P<n>(?:(?:Mr|Mrs|Ms|Dr|Miss|Sir|Lady|Lord|Aunt|Uncle)\.?\s+)?[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){0,2})"
    before = re.compile(r"(?:^|(?<=[\s,.;:!?\"“”]))" + who + r"\s+(?:\w+ly\s+)?" + EN_SPEECH_VERB + r"\b")
    after = re.compile(r"\b" + EN_SPEECH_VERB + r"\s+" + who)
    tags: Counter[str] = Counter()
    for pre, post in speech_contexts:
        for rx, sentence in ((before, pre), (before, post), (after, post), (after, pre)):
            for m in rx.finditer(sentence or ""):
                name = m.group("n").strip()
                first = name.split()[0].rstrip(".")
                if first in _EN_NOT_NAMES or name in _EN_NOT_NAMES:
                    continue
                tags[name] += 1
    if not tags:
        return []
    full = [n for n in tags if " " in n]
    owner: dict[str, str] = {}
    for n in tags:
        if " " not in n:
            holders = [f for f in full if n in f.split()]
            if len(holders) == 1:
                owner[n] = holders[0]
    people: dict[str, Person] = {}
    for n in sorted(tags, key=lambda x: (-tags[x], x)):
        head = owner.get(n, n)
        if head in known or n in known:
            continue
        person = people.setdefault(head, Person(name=head))
        if n != head and n not in person.aliases:
            person.aliases.append(n)
    for person in people.values():
        words = sorted({person.name, *person.aliases}, key=len, reverse=True)
        rx = re.compile(r"(?<![A-Za-z])(?:" + "|".join(re.escape(w) for w in words) + r")(?![A-Za-z])")
        person.mentions = max(1, len(rx.findall(text)))
    return list(people.values())


def _mentions(members: list[str], cands: dict[str, int]) -> int:
    """Mentions of a group: counts of each alias minus those inside a longer alias of the group."""
    total = 0
    for w in members:
        c = cands[w]
        for other in members:
            if other != w and w in other:
                c -= cands[other]
        total += max(c, 0)
    return total


def build_cast(people: list[Person]) -> Cast:
    alias_to_name: dict[str, str] = {}
    short_tags: dict[str, str] = {}
    for p in people:
        for a in [p.name, *p.aliases]:
            if len(a) >= 2 or a == p.name:
                alias_to_name.setdefault(a, p.name)
            else:
                short_tags.setdefault(a, p.name)
    keys = sorted(alias_to_name, key=lambda a: (-len(a), a))
    # a Latin name matches whole words only: "Mary" is not in "Maryland"
    pattern = re.compile("|".join(
        rf"(?<![A-Za-z]){re.escape(k)}(?![A-Za-z])" if k.isascii() else re.escape(k) for k in keys)) if keys else None
    return Cast(people=people, alias_to_name=alias_to_name, pattern=pattern, short_tags=short_tags)
