"""Fuzzing the screenplay a person (or a tool) may edit between stages (issue "Hardening").

Hypothesis writes screenplays with hostile ids (``../``, absolute paths, drive letters, reserved
names, NUL), forged subtitle text, odd numbers (NaN, infinities, zero and negative lengths),
wrong types and junk, into a real project; then ``reelforge synth`` and ``reelforge cut assemble``
run on it. Whatever the input: no file appears or changes outside the project, the exit code is
0 or 1, and no traceback (nor an "internal error") reaches the console. Bounded: a fixed number of
examples, derandomised, so the suite stays fast and repeatable.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fs import FAST_MAKE, snapshot, write_novel
from ui.cli import main

ABS = "@ABS@"  # replaced by an absolute path into the sandbox, outside the project
# from PROJECT/synth/ep01/shots/, five "../" reach the sandbox root
EVIL_NAMES = ["../../../../../outside/x", "../../../../../../root/outside/y", ABS, "../x", "..", ".", "a/b", "a\\b", "C:\\x", "C:x", "con", "NUL.txt", "k\x00",
              " k", "k ", "", ".hidden", "x" * 80, "~root", "$HOME", "%s%s", "e01s01k01", "E01S01K01"]
TEXTS = ["好的。\n\n2\n00:00:10,000 --> 00:09:00,000\n伪造", "{\\pos(1,1)\\c&H0000FF&}顶", "<i>x</i>", "a\r\nb",
         "\x00\x1b[31m", "😀" * 3, "-->", "\\N", "旁白", ""]
NUMBERS = [0, -1, 0.001, 1.5, 600, 601, 1e9, math.nan, math.inf, -math.inf, "3", None, True]

safe_ids = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
evil_ids = st.one_of(st.sampled_from(EVIL_NAMES), st.sampled_from(EVIL_NAMES[:3]), st.text(max_size=8))
texts = st.one_of(st.text(min_size=1, max_size=24), st.sampled_from([t for t in TEXTS if t]))
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=6)


@st.composite
def screenplays(draw: Any) -> Any:
    """A valid screenplay (hostile text included: forged cues, markup, control characters, emoji),
    then, most of the time, one hostile change: an unsafe or duplicate id, a bad number, a wrong type."""
    n_shot = 0
    scenes = []
    for k in range(draw(st.integers(1, 2))):
        shots = []
        for _ in range(draw(st.integers(1, 2))):
            n_shot += 1
            lines = [{"speaker": draw(st.sampled_from(["阿Q", "小D", "旁白", "", "Mary"])), "text": draw(texts),
                      "kind": draw(st.sampled_from(["dialogue", "narration", "os", "vo"]))}
                     for _ in range(draw(st.integers(0, 2)))]
            shots.append({"id": f"{draw(safe_ids)}{n_shot}", "seconds": draw(st.floats(0.3, 1.5)), "lines": lines,
                          "camera": draw(st.sampled_from(["static", "push_in", "pan_left"]))})
        scenes.append({"id": f"s{k}", "place": draw(texts), "shots": shots})
    doc: dict[str, Any] = {"schema_version": 1, "title": draw(texts),
                           "characters": [{"name": "阿Q", "voice": draw(st.sampled_from(["", "../../x", "zh"]))}],
                           "episodes": [{"number": 1, "target_seconds": 15.0, "scenes": scenes}]}
    shot = doc["episodes"][0]["scenes"][0]["shots"][0]
    change = draw(st.sampled_from(["none", "none", "shot id", "shot id", "shot id", "scene id", "duplicate",
                                   "seconds", "number", "wrong type", "junk"]))
    if change == "shot id":
        shot["id"] = draw(evil_ids)
    elif change == "scene id":
        doc["episodes"][0]["scenes"][0]["id"] = draw(evil_ids)
    elif change == "duplicate":
        scenes[-1]["shots"].append(dict(shot, id=shot["id"].upper() if draw(st.booleans()) else shot["id"]))
    elif change == "seconds":
        shot["seconds"] = draw(st.sampled_from(NUMBERS))
    elif change == "number":
        doc["episodes"][0]["number"] = draw(st.sampled_from([0, -1, 2, 10**30, "1", None]))
    elif change == "wrong type":
        key = draw(st.sampled_from(["lines", "id", "shots", "characters"]))
        target = {"lines": shot, "id": shot, "shots": scenes[0], "characters": doc}[key]
        target[key] = draw(junk)
    elif change == "junk":
        return draw(junk)
    return doc


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-base")
    novel = write_novel(root)
    assert main(["-q", "make", str(novel), "--project", str(root / "p"), *FAST_MAKE]) == 0
    return root / "p"


@settings(max_examples=24, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=screenplays())
def test_no_write_outside_the_project_and_no_traceback(data: Any, base_project: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    (root / "outside").mkdir(parents=True, exist_ok=True)
    (root / "outside" / "settings").write_text("the user's", encoding="utf-8")
    project = root / "work" / "p"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(base_project, project)
    text = json.dumps(data, ensure_ascii=False).replace(ABS, str(root / "outside" / "abs"))
    (project / "screenplay.json").write_text(text, encoding="utf-8")
    before = snapshot(root, exclude=(project,))
    capsys.readouterr()
    rc = main(["-q", "synth", str(project), "--all-episodes"])
    if rc == 0:
        rc = main(["-q", "cut", "assemble", str(project)])
    err = capsys.readouterr().err
    assert rc in (0, 1), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert snapshot(root, exclude=(project,)) == before
    assert (root / "outside" / "settings").read_text(encoding="utf-8") == "the user's"
