"""Hardening of the text side (issue "Hardening"): the script command's inputs and outputs, novel
decoding, and subtitle text that must not forge cues or styles."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from agents.script.cli import main as script_main
from agents.script.reader import decode_bytes, resolve_source
from core.errors import InputError
from pipelines.subtitles import Cue, ass_text, parse_ass_events, parse_srt, srt_text
from tests.support.fs import FAST_MAKE, TINY_NOVEL, tmpfs, write_novel
from ui.cli import main

FORGED = "好的。\n\n2\n00:00:10,000 --> 00:09:00,000\n伪造的字幕"


# --- 2. the novel overwritten by its own screenplay ---------------------------------------------
@pytest.mark.parametrize("name,extra", [("novel.md", []), ("novel.txt", ["--format", "md"]),
                                        ("novel.md", ["--format", "json"])])
def test_script_output_that_is_the_novel_is_refused(tmp_path: Path, name: str, extra: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    novel = write_novel(tmp_path, name)
    before = novel.read_bytes()
    assert script_main(["script", str(novel), "-o", str(novel), *extra, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is the novel itself" in err
    assert novel.read_bytes() == before
    # also through a link, and through the top-level CLI
    link = tmp_path / "link.md"
    link.symlink_to(novel)
    assert main(["script", str(novel), "-o", str(link), "--format", "md", "--quiet"]) == 2
    assert novel.read_bytes() == before


# --- 8. folders, mistyped paths, a truncated novel ----------------------------------------------
def test_script_on_a_folder_or_a_mistyped_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "novels").mkdir()
    write_novel(tmp_path / "novels", "aq.txt")
    out = tmp_path / "o.json"
    for source, word in [(str(tmp_path / "novels"), "is a folder"), ("novels/", "is a folder"),
                         ("novels/aqq", "does not exist"), ("./aq", "does not exist"),
                         ("novels/aq", "did you mean")]:
        assert script_main(["script", source, "-o", str(out), "--quiet"]) == 2, source
        assert word in capsys.readouterr().err, source
        assert not out.exists()
    # literal loglines are still loglines
    for logline in ("一个被退婚的少女逆袭成为女帝", "男/女主角互换身体的故事"):
        assert resolve_source(logline).encoding == "literal"


def test_truncated_utf8_novel_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = TINY_NOVEL.rstrip().encode("utf-8")
    for cut in (1, 2):  # the last character (3 bytes in UTF-8) cut short by a download
        text, enc = decode_bytes(data[:-cut], origin="novel.txt")
        assert enc == "utf-8" and text == TINY_NOVEL.rstrip()[:-1]
    assert "truncated" in caplog.text
    for enc in ("gb18030", "utf-16-le"):
        text, got = decode_bytes(TINY_NOVEL.encode(enc)[:-1], origin="novel.txt")
        assert got == enc and text.startswith("第一章")
    novel = tmp_path / "cut.txt"
    novel.write_bytes(data[:-1])
    assert script_main(["script", str(novel), "-o", str(tmp_path / "o.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))["episodes"]


def test_script_into_a_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    novel = write_novel(tmp_path)
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        assert script_main(["script", str(novel), "-o", str(ro / "o.json"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "Read-only file system" in err and str(ro) in err and "Traceback" not in err


def test_script_os_error_is_one_line_with_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.script.cli as cli

    def boom(*a: object, **k: object) -> None:
        raise OSError(5, "Input/output error", "/dev/sdz/novel.txt")

    monkeypatch.setattr(cli, "export", boom)
    novel = write_novel(tmp_path)
    assert script_main(["script", str(novel), "-o", str(tmp_path / "o.md"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'/dev/sdz/novel.txt': Input/output error" in err and "Traceback" not in err
    log = Path(err.split("details: ")[1].strip())
    assert "Traceback" in log.read_text(encoding="utf-8")


# --- 6. forged subtitle cues ----------------------------------------------------------------------
def test_srt_text_cannot_forge_a_cue() -> None:
    cues = [Cue(0, 25, FORGED), Cue(30, 50, "<font color=red>红</font>{\\an8}顶部")]
    srt = srt_text(cues, Fraction(25))
    parsed = parse_srt(srt)
    assert len(parsed) == 2
    assert [(a, b) for a, b, _ in parsed] == [("00:00:00,000", "00:00:01,000"), ("00:00:01,200", "00:00:02,000")]
    assert "<font" not in srt and "{\\an8}" not in srt
    assert re.findall(r"-->", srt) == ["-->", "-->"]


def test_ass_text_cannot_forge_events_or_styles() -> None:
    cues = [Cue(0, 25, "{\\pos(10,10)\\c&H0000FF&}顶部\\N换行", "甲,乙\n丙"), Cue(30, 50, FORGED)]
    ass = ass_text(cues, Fraction(25), 1080, 1920, title="剧名\n[Events]\nDialogue: 0,0:00:00.00,9:00:00.00,X")
    events = parse_ass_events(ass)
    assert len(events) == 2 and [e[:2] for e in events] == [("0:00:00.00", "0:00:01.00"), ("0:00:01.20", "0:00:02.00")]
    for _, _, _, text in events:
        assert "{" not in text and "\\" not in text
    assert [ln for ln in ass.splitlines() if ln.startswith("[")] == ["[Script Info]", "[V4+ Styles]", "[Events]"]
    name = ass.splitlines()[[i for i, ln in enumerate(ass.splitlines()) if ln.startswith("Dialogue:")][0]]
    assert name.split(",")[4] == "甲，乙 丙"


def test_forged_line_in_a_screenplay_stays_one_cue(tmp_path: Path) -> None:
    novel = write_novel(tmp_path)
    project = tmp_path / "p"
    assert main(["-q", "make", str(novel), "--project", str(project), *FAST_MAKE]) == 0
    path = project / "screenplay.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [ln for sc in data["episodes"][0]["scenes"] for s in sc["shots"] for ln in s["lines"]]
    lines[0]["text"] = FORGED
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert main(["-q", "make", str(novel), "--project", str(project), *FAST_MAKE]) == 0
    cues = parse_srt((project / "out" / "ep01.srt").read_text(encoding="utf-8"))
    assert len(cues) == len(lines)
    assert all(end < "00:01:00,000" for _, end, _ in cues)


def test_unsafe_ids_raise_input_error_with_the_rule() -> None:
    from core.screenplay import Series

    with pytest.raises(InputError, match="letters, digits"):
        Series.from_data({"title": "t", "episodes": [{"number": 1, "scenes": [{"id": "s/1"}]}]})


# --- 11. English subtitles and speakers -----------------------------------------------------------
ENGLISH = (
    "Chapter 1\n\n"
    "\"I don't think we should go,\" said Mary. \"It's far too dangerous for people like us, and the river is "
    "rising quickly tonight, so we had better wait here until the morning comes and the water goes down again.\"\n"
    "John laughed. \"You're always afraid of everything, Mary. Nobody's going to stop us now.\"\n"
    "\u201cDon\u2019t be a fool,\u201d Mary replied.\n"
)


def test_english_lines_split_between_words_and_keep_apostrophes() -> None:
    from agents.script.segment import MAX_LATIN_LINE_CHARS, speakable_pieces

    pieces = [ENGLISH[a:b] for a, b in speakable_pieces(ENGLISH, 0, len(ENGLISH))]
    assert "I don't think we should go" in pieces and "Don\u2019t be a fool" in pieces
    for a, b in speakable_pieces(ENGLISH, 0, len(ENGLISH)):
        assert b - a <= MAX_LATIN_LINE_CHARS
        assert not (ENGLISH[a - 1].isalpha() and ENGLISH[a].isalpha()), ENGLISH[a - 5:b]  # starts on a word
        assert not (ENGLISH[b - 1].isalpha() and b < len(ENGLISH) and ENGLISH[b].isalpha()), ENGLISH[a:b + 5]


def test_english_speakers_are_named(tmp_path: Path) -> None:
    novel = tmp_path / "en.txt"
    novel.write_text(ENGLISH, encoding="utf-8")
    out = tmp_path / "en.json"
    assert script_main(["script", str(novel), "-o", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {c["name"] for c in data["characters"]} == {"Mary", "John"}
    said = {(ln["speaker"], ln["text"].rstrip(",")) for sc in data["episodes"][0]["scenes"] for s in sc["shots"]
            for ln in s["lines"] if ln["kind"] != "narration"}  # a quote cut by its tag keeps its comma
    assert ("Mary", "I don't think we should go") in said
    assert any(who == "John" and text.startswith("You're always afraid") for who, text in said)
    assert all(who in ("Mary", "John") for who, _ in said)  # nobody is 路人


def test_script_project_refuses_a_non_project_folder_unless_adopted(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    novel = write_novel(folder)  # the novel itself inside the folder does not count
    (folder / "draft2.txt").write_text("my draft", encoding="utf-8")
    assert script_main(["script", str(novel), "--project", str(folder), "--quiet"]) == 2
    assert "--adopt" in capsys.readouterr().err and not (folder / "screenplay.json").exists()
    assert script_main(["script", str(novel), "--project", str(folder), "--adopt", "--quiet"]) == 0
    assert (folder / "screenplay.json").exists() and (folder / "draft2.txt").read_text(encoding="utf-8") == "my draft"
    other = tmp_path / "fresh"
    assert script_main(["script", str(write_novel(other)), "--project", str(other), "--quiet"]) == 0
