"""Delivery QC on a real episode made by `make`: it passes clean, and each injected defect is caught by its check.

One episode is made once for the module (the sample story, offline script, espeak voices,
animatic pictures, 360x640). Every defect is put into a copy: +6 dB of gain, 2 s of black, a
frozen second inside a moving shot, flicker, a hole in the sound, the implicit label stripped,
one subtitle moved 1.5 s, the visible mark hidden, text under the app's buttons, the picture
turned sideways, and a target length the episode misses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.base import RunContext
from agents.qc import QCAgent, QCInput, QCReport, episode_facts
from agents.studio import Studio, StudioSettings
from core.config import load_config
from core.media import probe
from core.workspace import Workspace
from pipelines.qc import CHECK_IDS, run_checks
from tests.support import qc_media

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "ui" / "samples" / "sample_novel.txt"
W, H = 360, 640


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("qc") / "sample"
    config = load_config()
    settings = StudioSettings.from_config(config, width=W, height=H, episode_seconds=30.0)
    result = Studio(project, config).make(SAMPLE, settings)
    assert result.qc, "make ran no delivery check"
    ws = Workspace(project)
    # the script stage's length estimate is its own business: hold the clean copy to the length it has
    plan = json.loads(ws.screenplay_path.read_text(encoding="utf-8"))
    length = float(probe(ws.episode_video(1)).duration or 0)
    plan["episodes"][0]["target_seconds"] = round(length, 2)
    ws.screenplay_path.write_text(json.dumps(plan, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"project": project, "ws": ws, "result": result, "config": config}


def qc(made: dict[str, Any], video: Path | None = None, srt: Path | None = None,
       families: tuple[str, ...] | None = None) -> QCReport:
    ctx = RunContext(config=made["config"])
    return QCAgent()(QCInput(made["project"], 1, "douyin", video=video, srt=srt, write=False, families=families),
                     ctx).output


def statuses(report: QCReport) -> dict[str, str]:
    return {c.id: str(c.status) for c in report.checks}


def test_make_delivers_an_episode_that_passes_loudness_and_true_peak(made: dict[str, Any]) -> None:
    report: QCReport = made["result"].qc[0]
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    s = statuses(report)
    assert s["loudness"] == "pass" and s["true_peak"] == "pass", report.to_json()
    assert report.check("true_peak").value <= -1.0
    assert -17.0 <= report.check("loudness").value <= -15.0
    # the report files sit beside the episode, and say what was fixed (if anything was)
    assert report.json_path is not None and report.html_path is not None
    assert report.json_path == made["ws"].out_dir / "ep01.qc.json" and report.json_path.is_file()
    data = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert data["passed"] == report.passed and [c["id"] for c in data["checks"]] == list(CHECK_IDS)
    html = report.html_path.read_text(encoding="utf-8")
    assert "<svg" in html and "true_peak" in html
    for fix in report.fixes:
        assert fix["check"] and fix["action"] and "fixed" in fix


def test_clean_episode_raises_no_false_alarm(made: dict[str, Any]) -> None:
    report = qc(made)
    s = statuses(report)
    # the test episode is made small to keep the suite quick: 360x640 is under Douyin's minimum
    # 720x1280, which `format` rightly reports, and nothing else
    fmt = report.check("format")
    assert fmt.status == "fail" and "minimum 720x1280" in fmt.detail and "aspect" not in fmt.detail
    assert fmt.value["aspect"] == "9:16" and fmt.value["video_codec"] == "h264" and fmt.value["audio_codec"] == "aac"
    wrong = {k: (v, report.check(k).detail) for k, v in s.items() if v == "fail" and k != "format"}
    assert not wrong, wrong
    for cid in ("loudness", "true_peak", "audio_dropout", "speech_coverage", "subtitle_timing", "voice_distinct",
                "black_frames", "frozen_frames", "flicker", "label_visible", "safe_zone", "duration", "label_metadata"):
        assert s[cid] == "pass", (cid, report.check(cid).detail)
    assert s["identity"] == "skip"  # animatic cards: no faces, no references


def test_gain_plus_6db_fails_loudness_and_true_peak(made: dict[str, Any], tmp_path: Path) -> None:
    src = made["ws"].episode_video(1)
    loud = qc_media.with_audio(src, tmp_path / "loud.mp4", lambda x, r: x * 10 ** (6 / 20))
    report = qc(made, loud, families=("loudness",))
    lo = report.check("loudness")
    assert lo.status == "fail" and lo.value > -11.5, lo.detail  # about 6 LU over -16
    tp = report.check("true_peak")
    assert tp.status == "fail" and tp.value > 0 and tp.where


def test_a_loud_episode_is_remastered_until_both_sound_checks_pass(made: dict[str, Any], tmp_path: Path) -> None:
    from agents.qc import remaster_sound

    project = tmp_path / "copy"
    shutil.copytree(made["project"], project)
    ws = Workspace(project)
    video = ws.episode_video(1)
    loud = qc_media.with_audio(video, tmp_path / "loud.mp4", lambda x, r: x * 10 ** (6 / 20))
    shutil.copyfile(loud, video)
    frames_before = _frames(video)
    ctx = RunContext(config=made["config"])
    before = QCAgent()(QCInput(project, 1, "douyin", write=False, families=("loudness",)), ctx).output
    assert before.check("true_peak").status == "fail" and before.check("loudness").status == "fail"
    fix = remaster_sound(ws, 1, "douyin", before)
    assert fix is not None and fix["fixed"], fix
    assert fix["before"]["true_peak"] > 0 and fix["after"]["true_peak"] <= -1.2, fix
    after = QCAgent()(QCInput(project, 1, "douyin", write=False, families=("loudness", "format")), ctx).output
    assert after.check("loudness").status == "pass" and after.check("true_peak").status == "pass", after.to_json()
    # the picture and the implicit label come through the re-master unchanged
    assert after.check("label_metadata").status == "pass"
    assert _frames(video) == frames_before
    # a clean episode needs no re-master: nothing is done and the file is left alone
    bytes_now = video.read_bytes()
    assert remaster_sound(ws, 1, "douyin", after) is None and video.read_bytes() == bytes_now


def _frames(video: Path) -> int:
    info = probe(video).video
    assert info is not None, f"{video} has no video stream"
    return info.frames


def test_two_seconds_of_black_are_found_where_they_are(made: dict[str, Any], tmp_path: Path) -> None:
    src = made["ws"].episode_video(1)
    black = qc_media.with_frames(src, tmp_path / "black.mp4", qc_media.black_segment(200, 50))
    report = qc(made, black, families=("frames",))
    c = report.check("black_frames")
    assert c.status == "fail" and c.value == pytest.approx(2.0, abs=0.05)
    assert c.where and c.where[0][0] == pytest.approx(8.0, abs=0.05) and c.where[0][1] == pytest.approx(10.0, abs=0.05)


def _moving_shot(made: dict[str, Any]) -> tuple[int, int]:
    facts, _ = episode_facts(made["ws"], 1)
    moving = [s for s in facts.shots if s.moving and s.end - s.start >= 2.0]
    assert moving, "the sample has no moving shot long enough"
    # the longest: the opening shot's title fades in, and the encoder needs a few frames of a held
    # picture to settle, so a short shot leaves the freeze too little context on either side
    shot = max(moving, key=lambda s: s.end - s.start)
    return int(round(shot.start * 25)), int(round(shot.end * 25))


def test_a_frozen_second_inside_a_moving_shot(made: dict[str, Any], tmp_path: Path) -> None:
    a, b = _moving_shot(made)
    start = (a + b) // 2 - 12
    frozen = qc_media.with_frames(made["ws"].episode_video(1), tmp_path / "frozen.mp4", qc_media.frozen_segment(start, 25))
    report = qc(made, frozen, families=("frames",))
    c = report.check("frozen_frames")
    assert c.status == "fail" and c.value == pytest.approx(1.0, abs=0.1), c.detail
    assert c.where[0][0] == pytest.approx((start - 1) / 25, abs=0.2)  # within a few frames: the encoder settles
    assert report.check("black_frames").status == "pass" and report.check("flicker").status == "pass"


def test_flicker_inside_a_shot(made: dict[str, Any], tmp_path: Path) -> None:
    a, b = _moving_shot(made)
    flick = qc_media.with_frames(made["ws"].episode_video(1), tmp_path / "flicker.mp4", qc_media.flicker_segment(a + 5, 20))
    report = qc(made, flick, families=("frames",))
    c = report.check("flicker")
    assert c.status == "fail" and c.value >= 5, c.detail
    assert a / 25 - 0.2 <= c.where[0][0] <= (a + 25) / 25


def test_a_hole_in_the_sound(made: dict[str, Any], tmp_path: Path) -> None:
    from core.media import read_audio

    src = made["ws"].episode_video(1)
    x = read_audio(src, rate=48000)[:, 0]
    # cut 200 ms out of speech where the voice is loud right at both edges: a hole whose edges
    # are quiet looks like speech's own pauses, and is not what this check claims to find
    peak = np.abs(x[: len(x) // 96 * 96]).reshape(-1, 96).max(axis=1)  # per 2 ms
    loud = np.flatnonzero((peak[:-101] > 0.4) & (peak[101:] > 0.4))  # 2 ms before t, 2 ms after t + 0.2 s
    assert len(loud), "no loud speech in the episode"
    t = (loud[len(loud) // 2] + 1) * 0.002

    def hole(y: np.ndarray, rate: int) -> np.ndarray:
        y[int(t * rate):int((t + 0.2) * rate)] = 0
        return y

    holed = qc_media.with_audio(src, tmp_path / "hole.mp4", hole)
    c = qc(made, holed, families=("loudness",)).check("audio_dropout")
    assert c.status == "fail" and c.value == 1, c.detail
    assert c.where[0][0] == pytest.approx(t, abs=0.02) and c.where[0][1] == pytest.approx(t + 0.2, abs=0.02)


def test_stripped_metadata_fails_the_implicit_label(made: dict[str, Any], tmp_path: Path) -> None:
    src = made["ws"].episode_video(1)
    bare = qc_media.with_audio(src, tmp_path / "bare.mp4", lambda x, r: x, metadata={})
    assert "AIGC" not in probe(bare).metadata
    c = qc(made, bare, families=("format",)).check("label_metadata")
    assert c.status == "fail" and "missing" in c.detail
    broken = qc_media.with_audio(src, tmp_path / "broken.mp4", lambda x, r: x,
                                 metadata={"AIGC": json.dumps({"Label": "1", "ContentProducer": ""})})
    c = qc(made, broken, families=("format",)).check("label_metadata")
    assert c.status == "fail" and "ProduceID" in c.detail


def test_a_subtitle_shifted_by_one_and_a_half_seconds(made: dict[str, Any], tmp_path: Path) -> None:
    srt = made["ws"].episode_srt(1)
    moved = qc_media.shifted_srt(srt, tmp_path / "moved.srt", cue=2, seconds=1.5)
    report = qc(made, srt=moved, families=("speech",))
    c = report.check("subtitle_timing")
    assert c.status == "fail" and c.value["start_worst"] == pytest.approx(1.5, abs=0.15), c.detail
    assert len(c.where) == 1
    rows = {r["cue"]: r for r in c.data["cues"]}
    assert abs(rows[1]["start_offset"]) < 0.2 and abs(rows[3]["start_offset"]) < 0.2


def test_a_silent_line_and_an_unsubtitled_line_fail_speech_coverage(made: dict[str, Any], tmp_path: Path) -> None:
    from pipelines.qc.base import parse_srt_time
    from pipelines.subtitles import parse_srt

    srt = made["ws"].episode_srt(1)
    cues = [(parse_srt_time(a), parse_srt_time(b), text) for a, b, text in parse_srt(srt.read_text(encoding="utf-8"))]
    assert len(cues) >= 5
    # the voice of cue 3 goes missing: its subtitle still shows over silence
    a3, b3, _ = cues[2]

    def mute(y: np.ndarray, rate: int) -> np.ndarray:
        y[int((a3 - 0.05) * rate):int(b3 * rate)] = 0
        return y

    muted = qc_media.with_audio(made["ws"].episode_video(1), tmp_path / "muted.mp4", mute)
    c = qc(made, muted, families=("speech",)).check("speech_coverage")
    assert c.status == "fail" and c.value == 1 and "cue 3" in c.detail, c.detail
    assert len(c.where) == 1 and c.where[0] == pytest.approx((a3, b3), abs=0.01)
    # cue 5 is left out of the subtitles: its speech is there with no cue over it
    a5, b5, _ = cues[4]
    kept = [cue for n, cue in enumerate(cues, 1) if n != 5]
    gone = tmp_path / "gone.srt"
    gone.write_text("\n".join(f"{n}\n{_ts(a)} --> {_ts(b)}\n{text}\n" for n, (a, b, text) in enumerate(kept, 1)),
                    encoding="utf-8")
    c = qc(made, srt=gone, families=("speech",)).check("speech_coverage")
    assert c.status == "fail" and c.value == 1 and "no subtitle" in c.detail, c.detail
    assert len(c.where) == 1 and a5 - 0.3 <= c.where[0][0] and c.where[0][1] <= b5 + 0.3


def _ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def test_hidden_mark_and_text_under_the_buttons(made: dict[str, Any], tmp_path: Path) -> None:
    src = made["ws"].episode_video(1)
    clean = qc(made, families=("frames",))
    rect = clean.check("label_visible").data["rect"]
    hidden = qc_media.with_frames(src, tmp_path / "hidden.mp4", qc_media.covered(tuple(rect), until=75))
    c = qc(made, hidden, families=("frames",)).check("label_visible")
    assert c.status == "fail" and c.value["opening"] < 0.5, c.detail
    # a caption burned in where Douyin draws its like / comment / share column
    under = qc_media.with_frames(src, tmp_path / "under.mp4", qc_media.text_at("点赞关注不迷路", (int(W * 0.55), int(H * 0.62)), 22))
    c = qc(made, under, families=("frames",)).check("safe_zone")
    assert c.status == "fail" and any("right column" in h["region"] for h in c.data["hits"]), c.detail
    # the same caption in the middle of the picture is fine
    mid = qc_media.with_frames(src, tmp_path / "mid.mp4", qc_media.text_at("点赞关注", (int(W * 0.3), int(H * 0.45)), 22))
    assert qc(made, mid, families=("frames",)).check("safe_zone").status == "pass"


def test_sideways_picture_and_missed_length_fail_format_and_duration(made: dict[str, Any], tmp_path: Path) -> None:
    src = made["ws"].episode_video(1)
    sideways = qc_media.with_frames(src, tmp_path / "sideways.mp4", lambda i, img: np.ascontiguousarray(np.rot90(img)),
                                    size=(H, W))
    c = qc(made, sideways, families=("format",)).check("format")
    assert c.status == "fail" and c.value["aspect"] == "16:9" and "9:16" in c.detail
    # the same episode held to twice its length
    facts, _ = episode_facts(made["ws"], 1)
    assert facts.target_seconds
    facts.target_seconds *= 2
    run = run_checks(src, made["ws"].episode_srt(1), facts, "douyin", families=("format",))
    d = run.by_id("duration")
    assert d.status == "fail" and d.limit[0] > d.value


def test_cli_json_contract_and_strict_exit(made: dict[str, Any], tmp_path: Path) -> None:
    project = tmp_path / "copy"
    shutil.copytree(made["project"], project)
    cmd = [sys.executable, "-m", "ui.cli", "-q", "qc", str(project), "--json", "--platform", "kuaishou"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert set(out) == {"episode", "file", "platform", "passed", "checks"}
    assert out["episode"] == 1 and out["platform"] == "kuaishou" and out["file"].endswith("ep01.mp4")
    assert [c["id"] for c in out["checks"]] == list(CHECK_IDS)
    for c in out["checks"]:
        assert set(c) == {"id", "status", "value", "limit", "where", "detail"}
        assert c["status"] in ("pass", "warn", "fail", "skip")
    assert (project / "out" / "ep01.qc.json").is_file() and (project / "out" / "ep01.qc.html").is_file()
    # a failing check turns into exit code 3 with --strict; the episode itself is never touched
    before = (project / "out" / "ep01.mp4").read_bytes()
    plan = json.loads((project / "screenplay.json").read_text(encoding="utf-8"))
    plan["episodes"][0]["target_seconds"] = 500.0
    (project / "screenplay.json").write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    run = subprocess.run(cmd[:-2] + ["--strict"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 3, run.stderr
    assert (project / "out" / "ep01.mp4").read_bytes() == before
    # errors name the problem and the fix
    run = subprocess.run([sys.executable, "-m", "ui.cli", "qc", str(project), "--episode", "7"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "episode 7" in run.stderr and "fix:" in run.stderr
