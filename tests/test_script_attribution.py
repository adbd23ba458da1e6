"""Who says what: the sample novel, each attribution pattern on small texts, cuts, and the hybrid mode."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from agents.base import RunContext
from agents.script import ENGINES, ScriptAgent, ScriptInput
from agents.script.hybrid import refine_speakers
from agents.script.llm.client import OpenAICompatClient
from agents.script.llm.engine import LLMEngine
from agents.script.offline import analyse, build_series
from agents.script.reader import literal_text, read_novel
from core.config import Config
from core.errors import InputError
from core.screenplay import Series
from core.workspace import Workspace
from tests.support.registries import registered
from tests.support.speaker_server import FakeSpeakerServer

SAMPLE = Path(__file__).resolve().parents[1] / "ui" / "samples" / "sample_novel.txt"
# every quoted passage of the sample and who says it (read by hand)
SAMPLE_SPEAKERS = [
    ("周师傅，这块表还能修吗？", "林晚"), ("这是你父亲的表。", "老周"), ("您认识我父亲？", "林晚"),
    ("二十年前，他把这张纸交给我，说总有一天，他的女儿会来取。", "老周"), ("我等了你二十年。", "老周"),
    ("晚晚，你父亲走得早，集团这些年全靠我撑着。", "林振海"), ("你一个小姑娘，就安心做你的设计师吧。", "林振海"),
    ("叔叔，父亲留下的账本，您见过吗？", "林晚"), ("什么账本？我没听说过。", "林振海"),
    ("林总，二十年前那笔去向不明的款子，审计一直没有结论。", "陈默"), ("够了！", "林振海"), ("散会！", "林振海"),
    ("把东西给我。", "林振海"), ("叔叔，父亲当年是被冤枉的，对不对？", "林晚"),
    ("那笔钱，是我拿的。我以为这件事会永远埋在地下。", "林振海"), ("林总，审计报告已经交上去了。", "陈默"),
]


def _said(series: Series) -> list[tuple[str, str]]:
    return [(ln.text, ln.speaker) for ep in series.episodes for sh in ep.shots() for ln in sh.lines
            if ln.kind != "narration"]


def _speakers(text: str) -> list[tuple[str, str]]:
    an = analyse(literal_text(text))
    return [(text[s.start:s.end], s.speaker) for s in an.segments if s.kind == "speech"]


def test_sample_keeps_every_quote_with_its_speaker_and_names_its_places() -> None:
    series = ScriptAgent()(ScriptInput(source=SAMPLE), RunContext(config=Config())).output
    said = _said(series)
    assert [t for t, _s in said] == [t for t, _s in SAMPLE_SPEAKERS]  # all 16, whole, in order
    right = sum(got == want for (_t, got), (_t2, want) in zip(said, SAMPLE_SPEAKERS, strict=True))
    assert right >= 15, said
    names = {c.name for c in series.characters}
    assert {"林晚", "老周", "林振海", "陈默"} <= names
    assert not names & {"林振", "路人", "叔叔", "林总", "周师傅"}, names
    assert {"修表铺", "会议室", "老宅"} <= {loc.name for loc in series.locations}
    assert "周师傅" in series.character("老周").aliases  # type: ignore[union-attr]
    text = read_novel(SAMPLE).text
    for ep in series.episodes:
        for sh in ep.shots():
            for ln in sh.lines:
                assert ln.source is not None and text[ln.source.start:ln.source.end] == ln.text


@pytest.mark.parametrize(("text", "expected"), [
    # speaker before the quote, after it, and a pronoun resolved by gender
    ("第一章\n沈默走进办公室。\n许晴抬起头，低声道：“你来了。”\n“我来了。”沈默说。\n“坐吧。”她笑着说。\n",
     ["许晴", "沈默", "许晴"]),
    # a quote split by a tag: both halves one speaker; an action beat before a quote
    ("第一章\n老陈坐在门口抽烟。宋雨站在他身后。\n“这件事，”老陈叹了口气，“你别管了。”\n宋雨把钥匙拍在桌上。“我偏要管。”\n",
     ["老陈", "老陈", "宋雨"]),
    # a vocative names the listener; an untagged exchange alternates
    ("第一章\n韩立和老周在院子里说话。老周正在修自行车。\n“周师傅，这车还能骑吗？”韩立问。\n“能。”老周头也不抬。\n"
     "“多少钱？”\n“不要钱。”\n",
     ["韩立", "老周", "韩立", "老周"]),
    # an unnamed minor speaker is named by the role
    ("第一章\n程野站在仓库门口。一个保安缩在墙角，哆哆嗦嗦地说：“我什么都没看见。”\n程野皱起眉头。“几点的事？”\n",
     ["保安", "程野"]),
])
def test_attribution_patterns(text: str, expected: list[str]) -> None:
    assert [s for _t, s in _speakers(text)] == expected


@pytest.mark.parametrize(("text", "expected"), [
    # a role noun that later gives its name: every line of that person in the chapter gets the name
    ("第一章\n周航坐在车站的长椅上。一个背着画板的姑娘走过来，在他旁边坐下。\n“这里有人吗？”姑娘问。\n"
     "“没有。”周航往旁边让了让。\n“我叫宋知微，美院的。”她伸出手，“你呢？”\n周航握了握她的手。“我叫周航。”\n"
     "宋知微笑了。宋知微把画板放在腿上。\n",
     ["宋知微", "周航", "宋知微", "宋知微", "周航"]),
    # who leaves is out of the exchange; siblings' full names are kept whole
    ("第一章\n唐知远和唐知安坐在饭桌前。唐知远放下筷子。唐知安看着他。\n一个送水的大爷敲门进来，"
     "放下水桶说：“放这儿了啊。”\n“谢谢您。”唐知远说。\n送水的大爷走了。唐知安把碗推到一边。\n“你真要走？”\n"
     "“嗯。”\n唐知远笑了笑。唐知安叹了口气。\n",
     ["大爷", "唐知远", "唐知安", "唐知远"]),
    # 朕: the emperor speaks, and the man he was until then is the emperor
    ("第一章\n沈如意在御花园里喂鱼。假山后面走出一个穿青衫的男子。\n男子笑着问：“你是哪个宫的？”\n"
     "沈如意行了个礼：“嫔妾是储秀宫的沈答应。”\n“沈答应。”他点了点头，“朕记住了。”\n沈如意愣住了。"
     "皇上转身走了。皇上走得很快。沈如意跪了下去。\n",
     ["皇帝", "沈如意", "皇帝", "皇帝"]),
])
def test_self_introduction_exits_and_the_emperor(text: str, expected: list[str]) -> None:
    assert [s for _t, s in _speakers(text)] == expected


def test_places_from_whole_words_and_chapter_headings() -> None:
    text = ("第一章 风雪客栈\n大雪封山。萧寒推门进去，在角落里坐下。萧寒要了一壶酒。\n“好酒。”萧寒说。\n" * 3 +
            "第二章\n第二天一早，萧寒牵着马走到渡口，看见江面结了冰。萧寒在渡口站了很久。\n“过不去了。”萧寒说。\n" * 3)
    an = analyse(literal_text(text))
    places = [sc.place for sc in an.scenes]
    assert "风雪客栈" in places and "渡口" in places, places


def test_forms_of_address_and_self_reference_never_become_characters() -> None:
    text = ("第一章 请安\n"
            "贤妃柳如烟扶着宫女的手走进殿里，看见沈清辞跪在地上。\n"
            "“本宫问你，皇上昨夜去了哪里？”贤妃冷冷地说。\n"
            "沈清辞低着头答道：“回娘娘的话，奴婢不知道。”\n"
            "贤妃冷笑一声：“不知道？”\n"
            "沈清辞咬着嘴唇，不再说话。贤妃拂袖而去。沈清辞慢慢站起来。\n") * 2
    an = analyse(literal_text(text))
    names = {p.name for p in an.cast.people} | {a for p in an.cast.people for a in p.aliases}
    assert "沈清辞" in names and ("贤妃" in names or "柳如烟" in names)
    assert not names & {"本宫", "皇上", "娘娘", "奴婢"}, names
    said = [s for _t, s in _speakers(text)]
    assert said[:3] == [an.cast.canonical("贤妃") or "贤妃", "沈清辞", an.cast.canonical("贤妃") or "贤妃"]


def test_quotes_cut_for_length_are_reported() -> None:
    para = "林晚看着老周。“{0}号账本在哪里？”林晚问。“{0}号在灯下。”老周说。\n"
    text = "第一章\n" + "".join(para.format(i) for i in range(40))
    novel = literal_text(text)
    an = analyse(novel)
    series, report = build_series(an, ScriptInput(source=text, episodes=1, episode_seconds=30))
    kept = {t for t, _s in _said(series)}
    cut = {c["text"] for c in report["cut_lines"]}
    quotes = [text[s.start:s.end] for s in an.segments if s.kind == "speech"]
    assert len(quotes) == 80 and cut and kept
    assert set(quotes) == kept | cut and not kept & cut  # every quote is either kept or reported
    assert all(c["reason"] == "episode length" and c["speaker"] in ("林晚", "老周") for c in report["cut_lines"])


EXTRA = "\n第四章 余波\n林晚和陈默站在老宅门口。\n“结束了吗？”\n“还没有。”\n“那就继续。”\n"


def test_hybrid_sends_only_doubtful_lines_and_records_the_usage() -> None:
    text = read_novel(SAMPLE).text + EXTRA
    an = analyse(literal_text(text))
    speech = [s for s in an.segments if s.kind == "speech"]
    doubtful = [s for s in speech if s.confidence < 0.7]
    sure = {id(s): s.speaker for s in speech if s.confidence >= 0.7}
    assert doubtful and len(doubtful) < len(speech) / 2
    with FakeSpeakerServer(pick=lambda names: names[-1]) as srv:
        client = OpenAICompatClient(srv.url, "fake-speakers", "", timeout_s=10, max_retries=0)
        report = refine_speakers(an, client, threshold=0.7, batch_lines=2)
    assert report["sent"] == len(doubtful) and report["lines"] == len(speech)
    assert report["calls"] == (len(doubtful) + 1) // 2 and report["tokens_in"] > 0
    assert all(s.speaker == sure[id(s)] for s in speech if id(s) in sure)  # sure lines were not sent
    assert all(s.how == "llm" for s in doubtful)
    units = {u.seg: u.speaker for u in an.units if u.kind != "narration"}
    idx = {id(s): i for i, s in enumerate(an.segments)}
    assert all(units[idx[id(s)]] == s.speaker for s in doubtful)


def test_hybrid_keeps_the_rules_guess_when_the_model_names_a_stranger() -> None:
    an = analyse(literal_text(read_novel(SAMPLE).text))
    before = [s.speaker for s in an.segments if s.kind == "speech"]
    with FakeSpeakerServer(pick=lambda names: "孙悟空") as srv:
        client = OpenAICompatClient(srv.url, "fake-speakers", "", timeout_s=10, max_retries=0)
        report = refine_speakers(an, client, threshold=2.0)  # every line
    assert report["sent"] == len(before) and report["rejected"] == len(before)
    assert [s.speaker for s in an.segments if s.kind == "speech"] == before


def test_hybrid_through_the_agent_and_the_llm_engine_hook(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="hybrid"):
        ScriptInput(source="x", hybrid=True).check()
    ctx = RunContext(config=Config())
    novel = tmp_path / "novel.txt"
    novel.write_text(read_novel(SAMPLE).text + EXTRA, encoding="utf-8")
    with FakeSpeakerServer() as srv:
        client = OpenAICompatClient(srv.url, "fake-speakers", "", timeout_s=10, max_retries=0)
        prices = {("fake-speakers", "input_token"): Decimal("0.000002"), ("fake-speakers", "output_token"): Decimal("0.000008")}
        engine = LLMEngine(client, hybrid_threshold=0.7, price_lookup=lambda model, unit, day: prices.get((model, unit)))
        with registered(ENGINES, "fake-llm", lambda inp, ctx, agent: engine):
            result = ScriptAgent()(ScriptInput(source=novel, engine="fake-llm", hybrid=True), ctx)
    series = result.output
    assert series.engine.startswith("hybrid:")
    assert [t for t, _s in _said(series)][:16] == [t for t, _s in SAMPLE_SPEAKERS]
    speaker_records = [r for r in result.usage if r.detail.get("level") == "speakers"]
    assert speaker_records, "no usage records for the speaker calls"
    assert all(r.detail["lines_sent"] < r.detail["lines_total"] == 19 for r in speaker_records)
    assert all("cost_cny" in r.detail for r in speaker_records)


def test_the_agent_writes_the_cut_report_into_the_project(tmp_path: Path) -> None:
    para = "林晚看着老周。“{0}号账本在哪里？”林晚问。“{0}号在灯下。”老周说。\n"
    novel = tmp_path / "long.txt"
    novel.write_text("第一章\n" + "".join(para.format(i) for i in range(40)), encoding="utf-8")
    ws = Workspace(tmp_path / "proj").create()
    ctx = RunContext(config=Config(), workspace=ws)
    result = ScriptAgent()(ScriptInput(source=novel, episodes=1, episode_seconds=30), ctx)
    cuts = ws.root / "script_cuts.json"
    assert cuts in result.files
    listed = json.loads(cuts.read_text(encoding="utf-8"))
    kept = {t for t, _s in _said(result.output)}
    assert listed and len(listed) + len(kept) == 80
    assert any("cut" in n for n in ctx.notes)
