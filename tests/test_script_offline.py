"""The offline engine on the three real novels and on small hand-made inputs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agents.base import RunContext
from agents.script import ScriptAgent, ScriptInput, read_novel
from agents.script.offline import TOLERANCE, analyse, build_series
from agents.script.reader import literal_text
from agents.script.segment import BAD_CHARS, MAX_LINE_CHARS
from core.config import Config
from core.errors import InputError
from core.screenplay import Series

JUNK = re.compile(r"更新时间|本章字数|xstt5|https?://|www\.|TXT小说|24小时内删除|章节内容开始")


def _adapt(novel_path: Path | str, **kw: object) -> tuple[Series, str, float, RunContext]:
    ctx = RunContext(config=Config())
    t0 = time.perf_counter()
    result = ScriptAgent()(ScriptInput(source=novel_path, **kw), ctx)  # type: ignore[arg-type]
    return result.output, read_novel(novel_path).text if isinstance(novel_path, Path) else "", time.perf_counter() - t0, ctx


@pytest.fixture(scope="module")
def aq(novels_dir: Path) -> tuple[Series, str]:
    s, text, _t, _c = _adapt(novels_dir / "阿Q正传.txt")
    return s, text


@pytest.fixture(scope="module")
def xyj(novels_dir: Path) -> tuple[Series, str, float]:
    s, text, t, _c = _adapt(novels_dir / "西游记.txt")
    return s, text, t


@pytest.fixture(scope="module")
def sgyy(novels_dir: Path) -> tuple[Series, str, float]:
    s, text, t, _c = _adapt(novels_dir / "三国演义.txt")
    return s, text, t


def _check_screenplay(series: Series, text: str, target: float = 90.0) -> None:
    """What every offline screenplay must satisfy, whatever the novel."""
    assert series.episodes
    names = {c.name for c in series.characters}
    for ep in series.episodes:
        total = sum(s.seconds for s in ep.shots())
        assert abs(total - target) <= target * TOLERANCE, (ep.number, total)
        assert ep.hook and ep.cliffhanger and ep.title
        for sc in ep.scenes:
            assert sc.shots and sc.shots[0].size in ("LS", "ELS")  # establishing shot first
            assert sc.source is not None and sc.source.start < sc.source.end
            assert len(sc.shots[0].lines) <= 1
            for shot in sc.shots[1:]:
                assert 1 <= len(shot.lines) <= 3, shot.id
            for shot in sc.shots:
                assert shot.visual_prompt and sc.place in shot.visual_prompt
                assert isinstance(shot.characters, list)
                for line in shot.lines:
                    assert line.source is not None
                    # traceable: the line IS the source text at its span
                    assert text[line.source.start:line.source.end] == line.text
                    if line.kind == "narration":
                        assert 2 <= len(line.text) <= MAX_LINE_CHARS
                        assert not any(c in BAD_CHARS for c in line.text), line.text
                    else:  # a quoted passage stays one line with its exact text, nested quotes and all
                        before = text[line.source.start - 1]
                        after = text[line.source.end] if line.source.end < len(text) else "\n"
                        assert before in "“「『‘\"" or text[:line.source.start].rstrip().endswith(("：", ":")), line.text
                        assert after in "”」』’\"\r\n" or line.text[-1] in "。！？!?…", line.text
                    assert not JUNK.search(line.text), line.text
                    assert line.text.strip() == line.text and "\n" not in line.text
                    if line.kind == "narration":
                        assert line.speaker == "旁白"
                    else:
                        assert line.speaker in names, line.speaker
    if len(series.episodes) >= 3:
        assert sum(ep.paywall for ep in series.episodes) == 1
    # JSON round trip through the strict model
    assert Series.from_json(series.to_json()) == series


def _person(series: Series, name: str) -> set[str]:
    ch = series.character(name)
    assert ch is not None, f"{name} not found among {[c.name for c in series.characters][:30]}"
    return {ch.name, *ch.aliases}


def test_aq_zhengzhuan(aq: tuple[Series, str]) -> None:
    series, text = aq
    assert series.title == "阿Q正传"
    assert len(series.source.chapters) == 9 and series.source.chapters[-1] == "第九章 大团圆"
    assert len(series.episodes) == 9  # the whole novel: at least one episode per chapter
    for name in ("阿Q", "赵太爷", "王胡", "小D", "吴妈", "邹七嫂"):
        assert series.character(name) is not None, name
    lead = next(c for c in series.characters if c.role == "lead")
    assert lead.name == "阿Q"
    _check_screenplay(series, text)
    speakers = {ln.speaker for ep in series.episodes for sh in ep.shots() for ln in sh.lines}
    assert {"阿Q", "王胡"} <= speakers


def test_xiyouji(xyj: tuple[Series, str, float]) -> None:
    series, text, seconds = xyj
    assert series.title == "西游记"
    assert len(series.source.chapters) == 101  # 100 回 and the 附录
    assert series.source.chapters[0].startswith("第一回")
    assert {"悟空", "行者", "孙悟空"} <= _person(series, "孙悟空")
    assert {"三藏", "唐僧"} <= _person(series, "唐僧")
    assert "八戒" in _person(series, "猪八戒")
    assert series.character("沙僧") is not None
    assert [c.name for c in series.characters if c.role == "lead"][:2] == ["孙悟空", "唐三藏"]
    _check_screenplay(series, text)
    assert seconds < 60, f"西游记 took {seconds:.1f} s (target 30 s on 2 cores; see the benchmark)"


def test_sanguo(sgyy: tuple[Series, str, float]) -> None:
    series, text, _seconds = sgyy
    assert series.title == "三国演义"
    assert len(series.source.chapters) == 120
    assert "玄德" in _person(series, "刘备")
    assert "孔明" in _person(series, "诸葛亮")
    assert "孟德" in _person(series, "曹操")
    assert "翼德" in _person(series, "张飞")
    for name in ("孙权", "吕布", "周瑜", "赵云"):
        assert series.character(name) is not None, name
    _check_screenplay(series, text)
    # one-character speech tags (飞曰, 操曰) resolve to the person
    speakers = {ln.speaker for ep in series.episodes for sh in ep.shots() for ln in sh.lines}
    assert "飞" not in speakers and "操" not in speakers


def test_episode_count_and_length_follow_the_request(novels_dir: Path) -> None:
    novel = read_novel(novels_dir / "阿Q正传.txt")
    for episodes, seconds in ((3, 90.0), (20, 60.0), (1, 120.0)):
        an = analyse(novel)
        series, _report = build_series(an, ScriptInput(source="x", episodes=episodes, episode_seconds=seconds))
        assert len(series.episodes) == episodes
        assert [e.number for e in series.episodes] == list(range(1, episodes + 1))
        _check_screenplay(series, novel.text, seconds)
        # the episodes follow the story: each one starts after the one before
        starts = [e.scenes[0].source.start for e in series.episodes if e.scenes]  # type: ignore[union-attr]
        assert starts == sorted(starts)


def test_deterministic(novels_dir: Path) -> None:
    novel = read_novel(novels_dir / "阿Q正传.txt")
    a, _ = build_series(analyse(novel), ScriptInput(source="x", episodes=4))
    b, _ = build_series(analyse(novel), ScriptInput(source="x", episodes=4))
    assert a.to_json() == b.to_json()


def test_junk_and_encodings_do_not_change_the_story(novels_dir: Path, tmp_path: Path) -> None:
    text = read_novel(novels_dir / "阿Q正传.txt").text
    ads = "\n".join(f"TXT小说天堂 https://www.example{i}.com 更新时间:2020-01-0{i % 9 + 1} 本章字数:{i}" for i in range(5))
    dirty = "\ufeff" + ads + "\n" + text.replace("\n第三章", "\n------章节内容开始-------\n第三章") + "\n" + ads
    path = tmp_path / "aq-gb.txt"
    path.write_bytes(dirty.replace("\n", "\r\n").encode("gb18030"))
    series, dirty_text, _t, _ctx = _adapt(path)
    assert len(series.source.chapters) == 9
    assert series.source.encoding == "gb18030"
    _check_screenplay(series, dirty_text)


def test_tiny_and_broken_inputs(tmp_path: Path) -> None:
    junk_only = tmp_path / "ads.txt"
    junk_only.write_text("TXT小说天堂 https://www.xstt5.com\n更新时间:2007 本章字数:10\n***\n", encoding="utf-8")
    with pytest.raises(InputError, match="no story text"):
        _adapt(junk_only)
    # a logline: one short episode, every line traceable into the logline itself, a warning about length
    logline = "少年林澈在末世觉醒异能。为了救出被困的妹妹，他独闯禁区，却发现禁区深处藏着父亲失踪的秘密！"
    ctx = RunContext(config=Config())
    series = ScriptAgent()(ScriptInput(source=logline), ctx).output
    assert len(series.episodes) == 1
    lines = [ln for sh in series.episodes[0].shots() for ln in sh.lines]
    assert lines and all(ln.source and logline[ln.source.start:ln.source.end] == ln.text for ln in lines)
    assert any("too short" in n for n in ctx.notes)
    # an outline with episode headings: one episode per heading
    outline = "第1集：觉醒\n林澈在废墟中醒来，发现自己能操控火焰。\n第2集：禁区\n林澈闯入禁区。“妹妹，等我！”林澈喊道。\n"
    series = ScriptAgent()(ScriptInput(source=outline, episode_seconds=30), RunContext(config=Config())).output
    assert len(series.episodes) == 2
    said = [ln for sh in series.episodes[1].shots() for ln in sh.lines if ln.kind == "dialogue"]
    assert said and said[0].speaker == "林澈" and said[0].text == "妹妹，等我！"


def test_dialogue_extraction_and_speakers() -> None:
    text = (
        "第一章 相遇\n"
        "    张三走进酒店，见李四坐在窗边。\n"
        "    “你来晚了。”李四冷冷地说。\n"
        "    张三笑道：“路上有事。”\n"
        "    “什么事？”\n"
        "    “不能说。”\n"
        "    李四想：这人必有隐情。\n"
        "    忽听门外有人叫道：「张三在么？」\n"
        "    张三道：我在这里！\n"
        "    李四又对张三道：“你的朋友真多。”\n"
        "    张三说：“那是自然。”李四道：“好！”\n"
    ) * 3
    novel = literal_text(text)
    an = analyse(novel)
    got = [(u.speaker, novel.text[u.start:u.end], u.kind) for u in an.units if u.kind != "narration"][:12]
    assert got[0] == ("李四", "你来晚了。", "dialogue")  # speech tag after the quote
    assert got[1] == ("张三", "路上有事。", "dialogue")  # 张三笑道：“……”
    assert got[2] == ("李四", "什么事？", "dialogue")  # alternation
    assert got[3] == ("张三", "不能说。", "dialogue")
    assert got[4] == ("李四", "这人必有隐情。", "vo")  # 想： is inner voice
    assert got[5][1:] == ("张三在么？", "os")  # 门外有人叫道 is off-screen
    assert got[6] == ("张三", "我在这里！", "dialogue")  # colon speech without quotes
    assert got[7] == ("李四", "你的朋友真多。", "dialogue")  # 对张三: 张三 is spoken to
    assert got[8] == ("张三", "那是自然。", "dialogue")
    assert got[9] == ("李四", "好！", "dialogue")
    names = {p.name for p in an.cast.people}
    assert {"张三", "李四"} <= names
