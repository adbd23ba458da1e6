"""People of modern prose: surname names, titled forms, nicknames, role nouns, forms of address, gender.

Web novels name people the modern way: a surname and one or two characters (林晚, 林振海), a
familiar form (老周, 小刘), a surname and a title (周师傅, 刘太医, 林总), a post before the name
(淑妃苏婉宁, 财务总监陈默), nicknames (晚晚, 婉儿, 小芷) and, for people the story never names, a
role noun (一个保安, 小太监). Forms of address and self-reference (叔叔, 娘娘, 本宫, 奴婢, 微臣)
are how people speak, never who they are: they are listed here so they never become characters.

Only narration is read for names: what people call each other inside quotes is address, not
identity. :func:`modern_names` returns candidates with their counts for
:func:`agents.script.characters.discover_cast`; :func:`nickname_links` and :func:`title_links`
say which forms belong to which person; :func:`guess_gender` reads 他/她 after each name.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable

# How people address or refer to each other or themselves: never a character.
ADDRESS = frozenset((
    "叔叔", "阿姨", "伯伯", "伯父", "伯母", "婶婶", "舅舅", "舅妈", "姑姑", "姑妈", "爷爷", "奶奶", "外婆", "外公",
    "爸爸", "妈妈", "爸", "妈", "爹", "娘", "爹爹", "娘亲", "父亲", "母亲", "哥", "哥哥", "姐", "姐姐", "弟弟", "妹妹",
    "大哥", "大姐", "二哥", "三哥", "兄弟", "兄长", "贤弟", "师傅", "师父", "师兄", "师姐", "师弟", "师妹", "师叔", "师伯",
    "老师", "先生", "小姐", "女士", "太太", "夫人", "公子", "少爷", "老爷", "大人", "娘娘", "皇上", "陛下", "万岁",
    "主子", "小主", "主人", "本宫", "奴婢", "奴才", "微臣", "臣妾", "嫔妾", "朕", "哀家", "老奴", "在下", "贫僧",
    "贫道", "老衲", "官人", "相公", "娘子", "客官", "少侠", "大侠", "姑娘", "殿下", "王爷", "公公", "老大", "头儿",
    "老公", "老婆", "宝贝", "亲爱的", "少主", "宗主", "前辈", "晚辈", "老夫", "本座", "本王", "孤", "寡人", "老身",
    "小人", "小的", "老朽", "兄台", "阁下", "施主", "道友", "长官", "同志", "师母", "主公", "丞相", "将军",
))

# People the story does not name: the role is the speaker's name (一个保安 -> 保安).
ROLE_NOUNS = sorted((
    "保安", "警察", "警员", "司机", "护士", "医生", "快递员", "外卖员", "邮递员", "清洁工", "保姆", "门卫", "厨师", "服务员", "店员", "前台", "秘书", "助理", "记者", "路人", "老人",
    "女人", "男人", "孩子", "少年", "少女", "姑娘", "小伙子", "大妈", "大爷", "老太太", "老头", "老者", "老汉",
    "小太监", "太监", "宫女", "侍卫", "嬷嬷", "丫鬟", "小厮", "家丁", "管家", "弟子", "外门弟子", "内门弟子",
    "汉子", "大汉", "船家", "店小二", "小二", "老掌柜", "掌柜", "伙计", "黑衣人", "蒙面人", "刺客", "对手", "侍女", "婢女",
    "妇人", "女子", "男子", "和尚", "道士", "尼姑", "书生", "官兵", "士兵", "士卒", "差役", "衙役", "捕快", "村民",
    "百姓", "学生", "同学", "老板", "老板娘", "经理", "主任", "班长", "队长", "小厮", "童子", "仆人", "信使", "使者",
), key=len, reverse=True)
# Role nouns that say whether the person is a woman or a man (a self-introduction renames the right one).
ROLE_GENDER = {
    **{r: "f" for r in ("女人", "少女", "姑娘", "大妈", "老太太", "宫女", "嬷嬷", "丫鬟", "侍女", "婢女", "妇人",
                         "女子", "尼姑", "老板娘", "护士")},
    **{r: "m" for r in ("男人", "少年", "小伙子", "大爷", "老头", "老汉", "小太监", "太监", "小厮", "家丁", "汉子",
                         "大汉", "男子", "和尚", "道士", "书生", "店小二", "小二", "老者")},
}
_ROLE_RE = re.compile(
    r"^(?:[他她我你]的|一个|一位|一名|一群|几个|那个|这个|那位|这位|那名|这名|为首的|另一个|旁边的|身边的|门口的|年轻的|"
    r"年老的|有个|有一个|那|这|一)?(?:[\u4e00-\u9fff]{1,8}?的)?[\u4e00-\u9fff]{0,6}?(?P<n>" + "|".join(ROLE_NOUNS) + r")"
)  # 一个穿白大褂的年轻男人: what describes the person ends with 的

# Posts that name one person in a story: 淑妃苏婉宁 makes 淑妃 another name of 苏婉宁.
_UNIQUE_POST = re.compile(
    r"^(?:[\u4e00-\u9fff]?(?:贵妃|妃|嫔|贵人|才人|美人|昭仪|婕妤|答应|常在)|皇后|太后|皇上|皇帝|太子|王爷|公主|"
    r"董事长|总裁|总经理|总监|财务总监|经理|主任|院长|校长|局长|队长|所长|法医|管家|老管家|掌门|宗主|长老|"
    r"掌柜|老掌柜|捕头|师父|大师兄|二师兄|师兄|师姐|班主任)$"
)
# Titles after a surname: 周师傅, 刘太医, 林总, 程队, 赵老板, 沈贵人, 王皇后.
MODERN_TITLES = sorted((
    "师傅", "太医", "总", "董", "队", "队长", "警官", "医生", "老师", "老板", "经理", "主任", "助理", "秘书", "律师",
    "教授", "局长", "长老", "掌门", "捕头", "少侠", "姑娘", "小姐", "先生", "夫人", "太太", "嬷嬷", "公公", "贵人",
    "才人", "美人", "答应", "常在", "贵妃", "妃", "嫔", "皇后", "大人", "将军", "师兄", "师姐", "师妹", "师弟",
    "叔", "姨", "哥", "姐", "妈", "婶", "伯", "爷",
), key=len, reverse=True)

_LONG_TITLE_AT = re.compile("|".join(t for t in MODERN_TITLES if len(t) >= 2))

# Common words that begin with a surname character and are never names.
COMMON_WORDS = frozenset((
    "高兴", "马上", "周围", "江湖", "黄色", "金色", "白色", "林子", "常常", "时候", "方向", "明白", "文件", "安静",
    "向来", "宁愿", "全部", "包括", "程度", "万一", "于是", "何况", "毕竟", "关系", "宫女", "华丽", "石头", "花园",
    "钱包", "温柔", "温暖", "钟声", "雷声", "云层", "许多", "许久", "孔雀", "黄昏", "白天", "白发", "金属", "金钱",
    "高大", "高处", "高声", "高手", "易容", "和尚", "和平", "平时", "平静", "平安", "平常", "朱红", "秦楼", "严肃",
    "严重", "华夏", "应该", "宫殿", "宫门", "宫中", "宫里", "宫墙", "白芷草", "房间", "房门", "门口", "关上", "关门",
    "余光", "余下", "左右", "上官", "东方", "成功", "成为", "成了", "戴着", "谈话", "宋体", "熊熊", "纪念", "舒服",
    "屈辱", "项目", "祝福", "董事", "梁上", "杜绝", "蓝色", "季节", "麻烦", "强烈", "贾府", "路上", "路边", "江面",
    "江边", "童年", "颜色", "梅花", "盛开", "林中", "钟表", "徐徐", "夏天", "蔡家", "田野", "胡子", "凌晨",
    "霍然", "万分", "管家", "房子", "经过", "经理", "干净", "解开", "应声", "宗门", "丁点", "宣布", "单独",
    "洪水", "包裹", "左手", "石阶", "崔嵬", "吉祥", "程序", "陆续", "荣幸", "羊毛", "惠风",
    "曲子", "家里", "家人", "封信", "井口", "段落", "富贵", "巫术", "焦急", "巴掌", "牧场", "山上", "山下", "山门",
    "谷底", "车上", "车里", "车窗", "侯府", "全身", "全场", "班上", "秋天", "仲夏", "伊始", "宫灯", "宁静", "甘心",
    "武功", "武器", "符咒", "龙椅", "叶子", "司机", "韶华", "白骨", "怀里", "蒲团", "从前", "从来", "索性", "咸阳",
    "屠夫", "蒙面", "池塘", "能够", "苍白", "双手", "双眼", "闻言", "党羽", "贡品", "劳累", "申时", "扶着", "冉冉",
    "宰相", "桑树", "桂花", "通红", "边上", "燕窝", "尚且", "农夫", "温度", "柴房", "连忙", "连声", "茹素",
    "习惯", "艾草", "鱼肉", "容易", "向前", "向后", "古怪", "易于", "终于", "居然", "衡量", "步子", "都是", "满脸",
    "满意", "弘扬", "国家", "文字", "广场", "阙下", "利落", "越发", "隆冬", "师父", "巩固", "简直", "饶命",
    "曾经", "沙发", "养心殿", "须臾", "丰盛", "关于", "相信", "相视", "查看", "后来", "后面", "荆棘", "红色", "游戏",
    "权力", "盖子", "益处", "万岁", "时间", "时辰", "安排", "安慰", "明天", "明日", "明显", "文书", "方才",
    "方便", "任何", "袁家", "柳树", "酒杯", "史书", "唐突", "费用", "廉价", "岑寂", "薛家", "雷霆", "汤药",
    "殷红", "罗盘", "毕生", "安然", "常年", "乐意", "于此", "时而", "傅粉", "皮肤", "齐声", "康复", "伍长",
    "余地", "元宵", "卜卦", "顾不得", "顾客", "孟浪", "平日", "黄金", "和气", "萧瑟", "尹氏", "姚黄",
    "邵阳", "湛蓝", "汪汪", "祁连", "毛巾", "毛病", "禹州", "米饭", "贝壳", "臧否", "计划", "伏击", "成熟", "戴上",
    "谈判", "宋代", "茅屋", "庞大", "熊猫", "纪律", "舒展", "屈膝", "项链", "祝贺", "董卓", "梁柱", "杜鹃", "阮囊",
    "蓝天", "席位", "季度", "麻木", "强大", "贾人", "路口", "娄子", "危险", "江水", "童话", "颜面", "郭公",
    "梅雨", "盛怒", "林间", "刁难", "钟情", "徐缓", "骆驼", "高层", "夏日", "猪肉", "胡乱", "凌乱", "霍霍",
    "虞美人", "万般", "支持", "管理", "卢沟", "莫非", "莫名", "经常", "房东", "裘衣", "缪斯", "干脆", "解释",
    "应付", "宗族", "丁香", "宣纸", "郁闷", "单纯", "杭州", "洪亮", "包围", "诸位", "左边", "石桌",
    "吉利", "程式", "邢台", "滑落", "裴回", "陆地", "荣华", "翁翁", "羊肉", "於是",
    "惠及", "甄别", "曲折", "家伙", "封锁", "储存", "汲取", "糜烂", "松开", "井水", "段时间",
))

_SURNAMES: frozenset[str] = frozenset()  # filled from characters (set at import there) to avoid a cycle
_MORE_SURNAMES = frozenset("铁楚墨夜")  # common in web novels, missing from the classic list
_FEMALE_CHARS = set("妈娘姐妹嫂婶姑姨婆妃后嬷女妇娥婉娜婷妍娟媛姗嫣妙姝妤雪芷薇蓉莲梅兰芳丽燕霞月秋春桃珠玉凤念晚瑶琳"
                    "琪颖倩茜蕾萍菲芸莹璐怡慧淑贞静柔")
_NOT_AFTER_NAME = set("里中内外边旁顶底部侧氏家府")
_PERSON_AFTER = set("说道问笑叹看望盯瞪瞥点摇站坐走跑推拉拿把被抬低回转皱愣怔沉咬伸握抱拍扶将正已却也又都才便没不忍"
                    "微轻冷淡心脸眼手身嘴声终立刚这那和与对向跟给让请叫喊答应想知觉听见挥递接放摆取掏打开关冲追赶"
                    "跪磕福行退进出来去从一猛忽突顿还仍")
EMPEROR = "皇帝"
_MAID_CHARS = set("翠莺燕春秋香梅兰菊竹桃杏柳红绿碧玉珠宝喜福巧灵秀彩云月雪霜晴芳婉琴棋书画鹊蝶")
_TITLE_AT = re.compile(r"(?:[\u4e00-\u9fff](?:贵妃|妃)|皇后|太后|皇帝|太子)(?!们)")
_APPOSITION = re.compile(r"^(?:[\u4e00-\u9fff]{0,4}的)?(?:" + "|".join(ROLE_NOUNS) + r"|助理|法医|管家|警员)"
                         r"(?P<name>[\u4e00-\u9fff]{2,3})")
_PRONOUN_SUBJECT = re.compile(r"[。！？；，,]\s*([他她])(?![们的])")
_TAGGED = re.compile(r"(?:道|说|问|喊|叫|答|说道|问道)$")
_NOT_THIRD = set("把被说道问也又都就便在是的了着和与对向跟给让却才正已没不一这那")
_CLAUSE_SPLIT = re.compile(r"[，,。！？!?；;：:、\s“”「」『』‘’（）()…—]+")
_LEADERS = re.compile(r"^(?:只见|但见|忽见|于是|然后|这时|此时|那时|当时|随后|接着|原来|可是|但是|不过|而且|只是|就连|连|"
                      r"却|又|便|就|也|才|只|但|而|竟|还|都|正|刚|已经|已|终于|忽然|突然|猛地|顿时|立刻|马上|"
                      r"第二天|第三天|次日|当晚|那晚|深夜|夜里|清晨|早上|下午|晚上|凌晨|半晌|良久|片刻后)+")


def set_surnames(surnames: frozenset[str]) -> None:
    global _SURNAMES
    _SURNAMES = surnames | _MORE_SURNAMES


def _name_at(clause: str, count: Callable[[str], int]) -> str | None:
    """A modern name opening ``clause``: 老周/小刘/阿Q, or a surname and one or two characters."""
    if len(clause) < 2:
        return None
    c0, c1 = clause[0], clause[1]
    if clause.startswith("皇上"):
        return EMPEROR  # the emperor, whom the narration calls 皇上
    if c1 == "儿" and c0 in _MAID_CHARS:
        return clause[:2]  # 翠儿, 莺儿: a maid's name
    if c0 in _SURNAMES:
        t = _LONG_TITLE_AT.match(clause, 1)
        if t:
            return clause[:t.end()]  # 李公公, 刘太医, 周师傅: a surname and a title is a name by its form
    if c0 == "小" and len(clause) >= 3 and clause[2] == "子" and c1 not in "孩伙姑":
        return clause[:3]  # 小喜子, 小桂子
    if c0 in "老小阿" and c1 in _SURNAMES and (len(clause) == 2 or clause[2] not in "子人家"):
        return clause[:2]
    if c0 == "阿" and (c1.isascii() and c1.isalpha() or c1 in "贵珍宝福根桂毛牛狗三四五六七"):
        return clause[:2]  # 阿Q, 阿贵
    t = _TITLE_AT.match(clause)
    if t:
        return t.group(0)  # 贤妃, 皇后, 皇帝: a post that is the person's name in the story
    if c0 not in _SURNAMES or not ("\u4e00" <= c1 <= "\u9fff"):
        return None
    two = clause[:2]
    if len(clause) >= 3 and "\u4e00" <= clause[2] <= "\u9fff":
        three = clause[:3]
        n2, n3 = count(two), count(three)
        if n3 >= 2 and n3 >= 0.66 * n2 and clause[2] not in _NOT_THIRD and clause[2] not in _NOT_AFTER_NAME:
            return three
        # siblings share two characters (许知夏, 许知秋): each full name is a good share of 许知
        if n3 >= 3 and n3 >= 0.25 * n2 and clause[2] not in _NOT_THIRD | _NOT_AFTER_NAME | _PERSON_AFTER:
            return three
    return two


def modern_names(text: str, narration: list[tuple[int, int]], count: Callable[[str], int],
                 min_count: int = 2) -> dict[str, int]:
    """Surname-form names that open narration clauses, with their counts in the whole text.

    A candidate must open a clause at least ``min_count`` times, be followed by what people do
    (a verb, 的 + face/hands/voice) rather than by a place word (里, 外, 上), and not be a
    common word (马上, 周围)."""
    opens: Counter[str] = Counter()
    introduced: set[str] = set()  # named right after a post at least once (宫女秋月)
    after: dict[str, Counter[str]] = defaultdict(Counter)
    for a, b in narration:
        span = text[a:b]
        tag_span = span.rstrip().endswith(("：", ":")) or bool(_TAGGED.search(span.rstrip("，,。 ")))
        for clause in _CLAUSE_SPLIT.split(span):
            clause = _LEADERS.sub("", clause)
            if len(clause) < 2:
                continue
            ap = _APPOSITION.match(clause)
            if ap:  # 宫女秋月, 助理小周, 法医许念: the name after the post
                clause = clause[ap.start("name"):]
            w = _name_at(clause, count)
            if w is not None and len(clause) > 2 and clause[0] in _SURNAMES and _TITLE_AT.match(clause[1:]):
                w = _TITLE_AT.match(clause[1:]).group(0)  # type: ignore[union-attr]  # 王皇后 -> 皇后
            if w is None and ap:
                rest = ap.group("name")
                w = rest if len(rest) == 3 and count(rest) >= 0.66 * count(rest[:2]) else rest[:2]
            if ap and w is not None and (w[0] == w[1] or w[0] not in _SURNAMES | set("小老阿")
                                         or (count(w) < 2 and w[0] not in "小老阿")):
                w = None  # 船家连连摆手: not a name after the post
            if w is None or w in COMMON_WORDS or w in ADDRESS:
                continue
            # an apposition (宫女秋月) or a speech tag (小喜子…道：) counts twice: it introduces a speaker
            strong = bool(ap or tag_span or _TAGGED.search(clause))
            opens[w] += 2 if strong else 1
            if ap or (len(w) >= 3 and w[0] in _SURNAMES and _LONG_TITLE_AT.fullmatch(w, 1)) \
                    or (len(w) == 2 and w[1] == "儿" and w[0] in _MAID_CHARS):
                introduced.add(w)  # an apposition or a surname with a title: a person by its form
            nxt = clause[len(w):len(w) + 2]
            after[w][nxt[:1] if nxt[:1] != "的" else nxt] += 1
    out: dict[str, int] = {}
    for w, k in opens.items():
        if k < min_count:
            continue
        follow = after[w]
        total = sum(follow.values())
        placey = sum(v for x, v in follow.items() if x[:1] in _NOT_AFTER_NAME)
        personal = sum(v for x, v in follow.items() if x[:1] in _PERSON_AFTER or (x[:1] == "的" and x[1:] in
                                                                              "脸眼手身嘴声心笑目神表话头"))
        if placey * 3 > total or (personal == 0 and w not in introduced):
            continue
        out[w] = count(w) + (count("皇上") if w == EMPEROR else 0)
    # a two-character form inside a three-character name that always carries the third is a fragment
    for w in [w for w in out if len(w) == 2]:
        longer = [x for x in out if len(x) == 3 and x.startswith(w)]
        if longer and sum(out[x] for x in longer) >= 0.8 * out[w]:
            out.pop(w)
    return out


def nickname_links(names: list[str]) -> dict[str, str]:
    """Forms of a given name that stand for the person: 晚晚/小晚/阿晚/晚儿 -> 林晚, 若雪 -> 林若雪."""
    links: dict[str, str] = {}
    given_owner: dict[str, list[str]] = defaultdict(list)
    for n in names:
        if len(n) in (2, 3) and n[0] in _SURNAMES and n[:1] not in "老小阿":
            given_owner[n[1:]].append(n)
    for given, owners in given_owner.items():
        if len(owners) != 1:
            continue
        owner = owners[0]
        last = given[-1]
        forms = [last * 2, "小" + last, "阿" + last, last + "儿"]
        if len(given) == 2:
            forms.append(given)
        for f in forms:
            links.setdefault(f, owner)
    return links


def title_links(text: str, names: list[str]) -> dict[str, str]:
    """Titled forms and posts that name one person: 周师傅 -> 老周, 淑妃苏婉宁 -> 淑妃."""
    links: dict[str, str] = {}
    by_surname: dict[str, list[str]] = defaultdict(list)
    for n in names:
        s = n[1] if n[0] in "老小阿" and len(n) == 2 else n[0]
        if s in _SURNAMES:
            by_surname[s].append(n)
    for s, owners in by_surname.items():
        if len(owners) != 1:
            continue
        for t in MODERN_TITLES:
            links.setdefault(s + t, owners[0])
    # a post right before a name: 淑妃苏婉宁, 财务总监陈默, 皇上萧承煜
    if not names:
        return links
    # one pass over the text for every name (longest first), looking at the four characters before it
    alternation = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    for m in alternation.finditer(text):
        n = m.group(0)
        before = text[max(0, m.start() - 4):m.start()]
        for k in range(len(before)):
            post = before[k:]
            if _UNIQUE_POST.match(post):
                prev = links.get(post)
                links[post] = n if prev in (None, n) else ""
                break
    return {k: v for k, v in links.items() if v}


def role_at(clause: str) -> str | None:
    """The role noun that opens ``clause`` (一个保安缩在墙角 -> 保安), if any."""
    m = _ROLE_RE.match(clause)
    return m.group("n") if m else None


def guess_gender(text: str, names_at: list[tuple[int, str]]) -> dict[str, str]:
    """``"f"``/``"m"`` per name from the pronoun that follows its mentions, else from its characters."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for i, (pos, name) in enumerate(names_at):
        nxt = names_at[i + 1][0] if i + 1 < len(names_at) else pos + 40
        window = text[pos + len(name):min(nxt, pos + 40)]
        cut = window.find("\n")
        window = window if cut < 0 else window[:cut]
        cut = window.find("“")
        window = window if cut < 0 else window[:cut]
        # the pronoun that takes over as the subject (顾景深靠在椅背上。他打量着她): not any 她 nearby
        m = _PRONOUN_SUBJECT.search(window)
        if m:
            votes[name]["f" if m.group(1) == "她" else "m"] += 1
    out: dict[str, str] = {}
    for name in {n for _p, n in names_at}:
        v = votes.get(name, Counter())
        if v["f"] + v["m"] >= 2 and v["f"] != v["m"]:
            out[name] = "f" if v["f"] > v["m"] else "m"
        elif any(c in _FEMALE_CHARS for c in name[1:] or name):
            out[name] = "f"
        elif v["f"] != v["m"]:
            out[name] = "f" if v["f"] > v["m"] else "m"
    return out
