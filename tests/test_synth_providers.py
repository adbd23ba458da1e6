"""``reelforge make`` / ``synth`` with generation providers, against local fakes of Ark, Kling and
MiniMax: the episode is made, every billable call is a usage record in the provider's units, a
second run submits nothing, ``--dry-run`` sends nothing billable, ``--budget`` stops first, a
failed shot falls back to the animatic with a note, references are recorded per shot."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from core.media import probe
from core.screenplay import Character
from tests.support.providers import FakeArk, FakeKling, FakeMiniMax
from tests.test_chain import FAST, _chapter_text
from ui.cli import main

KEY = "test-key-0123456789"
SECRET = "kling-secret-key-abcdef-0123456789ab"
FLAGS = ["--image", "kling:kling-v1-5", "--video", "ark:doubao-seedance-1-0-pro-250528",
         "--voice", "minimax:speech-02-hd"]


@pytest.fixture()
def novel(tmp_path: Path, novels_dir: Path) -> Path:
    path = tmp_path / "阿Q正传_节选.txt"
    path.write_text(_chapter_text(novels_dir)[:2500], encoding="utf-8")
    return path


@pytest.fixture()
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    with FakeKling(key=KEY, secret=SECRET) as kling, FakeArk(key=KEY) as ark, FakeMiniMax(key=KEY) as mm:
        env = {"KLING_ACCESS_KEY": KEY, "KLING_SECRET_KEY": SECRET, "ARK_API_KEY": KEY, "MINIMAX_API_KEY": KEY,
               "REELFORGE_PROVIDERS__KLING__BASE_URL": kling.base_url,
               "REELFORGE_PROVIDERS__ARK__BASE_URL": ark.base_url,
               "REELFORGE_PROVIDERS__MINIMAX__BASE_URL": mm.base_url}
        for name in ("kling", "ark", "minimax"):
            env[f"REELFORGE_PROVIDERS__{name.upper()}__POLL_FIRST_S"] = "0.02"
            env[f"REELFORGE_PROVIDERS__{name.upper()}__CONCURRENCY"] = "8"
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield {"kling": kling, "ark": ark, "minimax": mm}


def submissions(fakes: dict[str, object]) -> dict[str, int]:
    return {n: f.counts["submit"] for n, f in fakes.items()}  # type: ignore[attr-defined]


def test_make_with_providers_meters_everything_and_never_pays_twice(tmp_path: Path, novel: Path,
                                                                     fakes: dict[str, object],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    args = ["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST, *FLAGS]
    assert main(args) == 0
    video = Path(capsys.readouterr().out.strip().splitlines()[-1])
    info = probe(video)
    assert info.video is not None and info.audio is not None
    render = json.loads((project / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))
    shots = render["shots"]
    assert all(s["picture"] != "animatic" for s in shots), [s["notes"] for s in shots]
    assert all(s["motion"].startswith("i2v:ark:") for s in shots)
    first = submissions(fakes)
    assert first["kling"] >= len(shots) and first["ark"] == len(shots) and first["minimax"] > 0

    # every billable call is a usage record with the provider's own units and the price used
    with sqlite3.connect(project / "usage.sqlite") as db:
        rows = db.execute("SELECT engine, model, unit, quantity, detail FROM usage_events "
                          "WHERE engine IN ('kling', 'ark', 'minimax') AND unit != 'audio_second'").fetchall()
    units = {(r[0], r[2]) for r in rows}
    assert ("kling", "image") in units and ("ark", "output_token") in units and ("minimax", "character") in units
    for _, _, _, _, detail in rows:
        d = json.loads(detail)
        assert d["task_id"] and d["price_yuan_per_unit"] is not None
    assert sum(1 for r in rows if r[0] == "ark") == first["ark"]

    # references: the character sheets, made first, are recorded per shot
    sheets = json.loads((project / "synth" / "characters" / "sheets.json").read_text(encoding="utf-8"))
    assert sheets and all(v["status"] == "approved" for v in sheets.values())
    records = [json.loads(p.read_text(encoding="utf-8")) for p in (project / "synth" / "ep01" / "keyframes").glob("*.json")
               if not p.name.endswith(".motion.json")]
    with_refs = [r for r in records if r["record"]["references"]]
    assert with_refs, "shots with a character carry the sheet as a reference"
    kling_bodies = [q.json() for q in fakes["kling"].requests if q.method == "POST"]  # type: ignore[attr-defined]
    assert any(b.get("image_reference") == "subject" for b in kling_bodies)

    # the ledger prices what was recorded
    from ledger.api import Ledger
    from tests.support.ledger import USCC_STUDIO, make_uscc, n20, paid_invoice

    lg = Ledger(tmp_path / "ledger.sqlite")
    lg.master.add_company("影锻文化传媒有限公司", USCC_STUDIO, 10)
    for name, body, alias in (("北京可灵科技有限公司", "91110108MA01KL1G", "kling"),
                              ("北京火山引擎科技有限公司", "91110108MA01H72E", "volcengine"),
                              ("上海稀宇科技有限公司", "91310115MA1MM3X1", "minimax")):
        lg.master.add_vendor(name, make_uscc(body), aliases=[alias])
    imported = lg.usage.import_project(project)
    assert imported.unpriced == 0 and imported.estimated_micro > 0

    # reconcile: the usage of each provider beside that vendor's invoices
    today = date.today()
    paid_invoice(lg, "北京可灵科技有限公司", n20(today.year, 7), today.isoformat(), "1.00", "0.06", "1.06")
    recon = {r.vendor_label: r for r in lg.recon.reconcile(today.year, period="year")}
    assert recon["北京可灵科技有限公司"].estimated_micro > 0 and recon["北京可灵科技有限公司"].invoiced_fen == 100
    assert recon["北京火山引擎科技有限公司"].estimated_micro > 0 and recon["上海稀宇科技有限公司"].estimated_micro > 0
    assert sum(r.estimated_micro for r in recon.values()) == imported.estimated_micro

    # a second make: everything reused, nothing sent again
    capsys.readouterr()
    assert main(args) == 0
    assert submissions(fakes) == first


def test_make_with_ark_images_kling_video_minimax_voices(tmp_path: Path, novel: Path, fakes: dict[str, object],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's own combination: Seedream keyframes with the sheets as reference images, Kling
    image-to-video of each keyframe, MiniMax voices; usage in each provider's units; a second run
    sends nothing."""
    project = tmp_path / "p"
    args = ["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST,
            "--image", "ark:doubao-seedream-4-0-250828", "--video", "kling:kling-v2-1",
            "--voice", "minimax:speech-02-hd"]
    assert main(args) == 0
    assert probe(Path(capsys.readouterr().out.strip().splitlines()[-1])).video is not None
    shots = json.loads((project / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))["shots"]
    assert all(s["motion"].startswith("i2v:kling:") for s in shots), [s["notes"] for s in shots]
    ark_bodies = [q.json() for q in fakes["ark"].requests  # type: ignore[attr-defined]
                  if q.method == "POST" and q.path.endswith("/images/generations")]
    assert any(b.get("image") for b in ark_bodies), "keyframes carry the character sheets as reference images"
    with sqlite3.connect(project / "usage.sqlite") as db:
        units = set(db.execute("SELECT engine, unit FROM usage_events WHERE engine IN ('ark', 'kling', 'minimax')"))
    assert {("ark", "image"), ("kling", "video_second"), ("minimax", "character")} <= units
    first = submissions(fakes)
    assert first["kling"] == len(shots)
    assert main(args) == 0
    assert submissions(fakes) == first


def test_dry_run_sends_nothing_billable_and_budget_stops_first(tmp_path: Path, novel: Path,
                                                               fakes: dict[str, object],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    base = ["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST, *FLAGS]
    assert main([*base, "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert "kling-v1-5" in table and "doubao-seedance-1-0-pro" in table and "speech-02-hd" in table
    assert "total" in table
    assert all(v == 0 for v in submissions(fakes).values())
    assert main([*base, "--budget", "0.05"]) == 1
    err = capsys.readouterr().err
    assert "budget" in err or "cap" in err
    assert all(v == 0 for v in submissions(fakes).values())


def test_failed_shot_falls_back_to_the_animatic_with_a_note(tmp_path: Path, novel: Path,
                                                           fakes: dict[str, object]) -> None:
    project = tmp_path / "p"
    fakes["kling"].fail_tasks = 1000  # type: ignore[attr-defined]
    assert main(["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST,
                 "--image", "kling:kling-v1-5"]) == 0
    render = json.loads((project / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))
    assert all(s["picture"] == "animatic" for s in render["shots"])
    assert any("animatic plate is used" in n for s in render["shots"] for n in s["notes"])
    n_shots = len(render["shots"])
    assert fakes["kling"].counts["submit"] >= 3 * n_shots  # type: ignore[attr-defined]  # 1 + 2 retries per shot


def test_voices_by_gender_and_age_overridable_in_the_screenplay() -> None:
    from agents.synth.providers import cast_provider_voices, voice_profile
    from core.screenplay import Series
    from pipelines.providers.minimax import VOICES

    chars = [Character(name="阿Q", description="未庄的男人，年轻"), Character(name="吴妈", description="赵家的女仆，中年"),
             Character(name="赵太爷", description="老爷，白发"),
             Character(name="小D", description="年轻男人", voice="minimax:male-qn-badao"),
             Character(name="王胡", description="男人", voice="cmn+m3")]
    assert voice_profile(chars[1])[0] == "female" and voice_profile(chars[2]) == ("male", "old")
    series = Series.model_validate({"title": "t", "characters": [c.model_dump() for c in chars], "episodes": []})
    cast = cast_provider_voices(series, "minimax", VOICES)
    assert cast["小D"].voice == "male-qn-badao"  # the screenplay's own choice
    assert cast["吴妈"].voice in VOICES[("female", "adult")] + VOICES[("female", "young")]
    assert cast["王胡"].voice in sum(VOICES.values(), ())  # an espeak voice is not sent to the provider
    assert cast["阿Q"].voice != cast["小D"].voice or cast["阿Q"].voice in VOICES[("male", "young")]


def test_make_killed_while_videos_are_in_flight_resumes_without_paying_twice(tmp_path: Path, novel: Path,
                                                                             fakes: dict[str, object]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.test_providers_runner import journal_rows

    project = tmp_path / "p"
    ark = fakes["ark"]
    ark.latency_s = 600  # type: ignore[attr-defined]  # the videos stay in flight until the kill
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "ui.cli", "-q", "make", str(novel), "--project", str(project), "--episodes", "1",
           *FAST, *FLAGS]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            rows = journal_rows(project)
            videos = [r for r in rows if r[0].endswith("/video") and r[2]]
            if videos and len(videos) == ark.counts["submit"] and ark.counts["status"] > 0:  # type: ignore[attr-defined]
                break
            if proc.poll() is not None:
                raise AssertionError(proc.communicate()[1])
            time.sleep(0.05)
        else:
            raise AssertionError("no video task was in flight")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    paid = submissions(fakes)
    ark.latency_s = 0.0  # type: ignore[attr-defined]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    render = json.loads((project / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))
    n = len(render["shots"])
    after = submissions(fakes)
    assert after["ark"] == n, (paid, after)  # each shot's video paid for once, across the kill
    assert after["minimax"] == paid["minimax"]  # the voices were all made before the kill: none again
    kling_jobs = {r[0] for r in journal_rows(project) if r[0].startswith("sheets/") or r[0].endswith("/keyframe")}
    assert after["kling"] == len(kling_jobs)  # one submission per keyframe and sheet, across the kill
    with sqlite3.connect(project / "usage.sqlite") as db:
        ark_records = db.execute("SELECT COUNT(*) FROM usage_events WHERE engine = 'ark'").fetchone()[0]
    assert ark_records == n


def test_review_required_stops_after_the_character_sheets_until_approved(tmp_path: Path, novel: Path,
                                                                         fakes: dict[str, object],
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    base = ["-q", "make", str(novel), "--project", str(project), "--episodes", "1", *FAST,
            "--image", "kling:kling-v1-5"]
    assert main([*base, "--review-required"]) == 1
    assert "character sheet" in capsys.readouterr().err
    sheets_file = project / "synth" / "characters" / "sheets.json"
    sheets = json.loads(sheets_file.read_text(encoding="utf-8"))
    names = sorted(sheets)
    assert names and all(v["status"] == "pending" for v in sheets.values())
    assert submissions(fakes)["kling"] == len(names)  # the sheets only: no keyframe paid before the look is approved

    # approve all but one; ask for that one again: a new sheet (new seed), still pending
    synth = ["-q", "synth", str(project), "--episode", "1"]
    assert main([*synth, *[a for n in names[1:] for a in ("--approve-sheet", n)],
                 "--regenerate-sheet", names[0]]) == 0
    assert not (project / "synth" / "characters" / f"{names[0]}.png").exists()
    assert main([*base, "--review-required"]) == 1
    capsys.readouterr()
    again = json.loads(sheets_file.read_text(encoding="utf-8"))
    assert again[names[0]]["status"] == "pending" and again[names[0]]["round"] == 1
    assert again[names[0]]["task_id"] != sheets[names[0]]["task_id"]
    assert all(again[n]["status"] == "approved" and again[n]["by"] == "reviewer" for n in names[1:])
    assert submissions(fakes)["kling"] == len(names) + 1
    assert main([*synth, "--approve-sheet", "nobody"]) == 1  # a clear error, nothing changed
    assert "no character sheet" in capsys.readouterr().err

    assert main([*synth, "--approve-sheet", names[0]]) == 0
    assert main([*base, "--no-review-required"]) == 0
    render = json.loads((project / "synth" / "ep01" / "render.json").read_text(encoding="utf-8"))
    assert submissions(fakes)["kling"] == len(names) + 1 + len(render["shots"])  # sheets not sent again
