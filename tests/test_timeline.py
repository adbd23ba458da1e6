"""Timeline model and exports: OTIO, FCPXML, FCP7 XML, EDL and 剪映 drafts round-trip to the frame."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from core.errors import InputError
from core.timeline import (
    Caption,
    Clip,
    Marker,
    MediaRef,
    Timeline,
    Track,
    Transition,
    picture_pieces,
    seconds_to_frames,
)
from pipelines.timeline import export_timeline
from pipelines.timeline.jianying import frames_to_us, read_draft, us_to_frames
from pipelines.timeline.otio_io import nominal_fps, read_timeline

FIXTURES = Path(__file__).parent / "fixtures"
RATES = [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(25), Fraction(24)]


def sample(fps: Fraction, tmp: Path) -> Timeline:
    a = MediaRef(str(tmp / "shot_a.mp4"), fps, 2000, 640, 360)
    b = MediaRef(str(tmp / "shot_b.mp4"), fps, 900, 640, 360)
    c = MediaRef(str(tmp / "shot_c.mp4"), fps, 700, 640, 360)
    music = MediaRef(str(tmp / "music.wav"), fps, 5000, 0, 0, has_video=False)
    video = Track("video", "V1", (Clip(a, 0, 101, 17), Clip(b, 101, 77, 40), Clip(c, 178, 63, 25),
                                  Clip(a, 260, 37, 1001)),
                  (Transition("dissolve", 101, 6, 6), Transition("dissolve", 178, 5, 5)))
    dialogue = Track("audio", "A1", (Clip(a, 0, 101, 17), Clip(b, 101, 77, 40), Clip(c, 178, 63, 25)), role="dialogue")
    bgm = Track("audio", "A2", (Clip(music, 0, 297, 0, gain_db=-12.0),), role="music")
    return Timeline("第1集", fps, 640, 360, (video, dialogue, bgm),
                    captions=(Caption(3, 60, "你好"), Caption(110, 170, "再见", "阿Q")),
                    markers=(Marker(101, "scene 2"),)).validate()


@pytest.mark.parametrize("fps", RATES, ids=str)
@pytest.mark.parametrize("fmt", ["otio", "fcpxml", "fcp7", "edl"])
def test_round_trip_same_cuts(tmp_path: Path, fps: Fraction, fmt: str) -> None:
    tl = sample(fps, tmp_path)
    path, notes = export_timeline(tl, tmp_path / f"ep.{fmt}", fmt)
    back = read_timeline(path, fmt, fps=fps)
    compared = 0
    for kind in ("video", "audio"):
        # tracks pair up by kind and order (EDL calls its track "V", FCP7 numbers audio tracks)
        mine = [t for t in tl.tracks if t.kind == kind]
        for src, track in zip(mine, [t for t in back.tracks if t.kind == kind], strict=False):
            assert picture_pieces(track, fps) == picture_pieces(src, fps), (fmt, track.name)
            compared += 1
    assert compared == (1 if fmt == "edl" else 3)
    if fmt == "edl":
        assert any("one picture track" in n for n in notes)
    if fmt == "otio":
        assert back.captions == tl.captions and back.markers == tl.markers
        assert back.tracks[2].clips[0].gain_db == -12.0


@pytest.mark.parametrize("fps", RATES, ids=str)
def test_jianying_round_trip_and_structure(tmp_path: Path, fps: Fraction) -> None:
    tl = sample(fps, tmp_path)
    folder, notes = export_timeline(tl, tmp_path / "draft", "jianying")
    assert any("叠化" in n for n in notes)  # dissolves are reported, not silently dropped
    back = read_draft(folder)
    assert back.cuts() == tl.cuts()
    assert back.captions == tuple(Caption(c.start, c.end, c.text) for c in tl.captions)
    assert back.fps == fps and (back.width, back.height) == (640, 360)
    assert back.tracks[2].clips[0].gain_db == pytest.approx(-12.0, abs=0.01)
    check_draft_structure(folder)


def test_jianying_draft_saved_by_the_app_reads_without_our_keys(tmp_path: Path) -> None:
    fps = Fraction(30)
    tl = sample(fps, tmp_path)
    folder, _ = export_timeline(tl, tmp_path / "draft", "jianying")
    data = json.loads((folder / "draft_content.json").read_text(encoding="utf-8"))
    data.pop("reelforge")
    for kind in ("videos", "audios"):
        for m in data["materials"][kind]:
            m.pop("reelforge_fps")
            m.pop("reelforge_frames")
    (folder / "draft_content.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert read_draft(folder).cuts() == tl.cuts()


def test_encrypted_draft_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "d6"
    folder.mkdir()
    (folder / "draft_content.json").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="6.x"):
        read_draft(folder)


def _type_ok(value: object, want: str) -> bool:
    return {
        "str": lambda v: isinstance(v, str), "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, float), "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict), "list": lambda v: isinstance(v, list), "null": lambda v: v is None,
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool), "any": lambda v: True,
    }[want](value)


def _check_keys(obj: dict, spec: dict, where: str) -> None:
    for key, want in spec.items():
        assert key in obj, f"{where}: missing {key}"
        assert _type_ok(obj[key], want), f"{where}.{key}: {type(obj[key]).__name__} is not {want}"


def check_draft_structure(folder: Path) -> None:
    spec = json.loads((FIXTURES / "jianying_5x_structure.json").read_text(encoding="utf-8"))
    content = json.loads((folder / "draft_content.json").read_text(encoding="utf-8"))
    meta = json.loads((folder / "draft_meta_info.json").read_text(encoding="utf-8"))
    _check_keys(content, spec["draft_content"], "draft_content")
    _check_keys(content["canvas_config"], spec["canvas_config"], "canvas_config")
    assert content["version"] == 360000 and content["new_version"] == "110.0.0"
    assert sorted(content["materials"]) == sorted(spec["materials"])
    mats = content["materials"]
    ids = {m["id"] for kind in mats for m in mats[kind] if isinstance(m, dict) and "id" in m}
    for m in mats["videos"]:
        _check_keys(m, spec["video_material"], "video material")
        assert m["type"] == "video" and Path(m["path"]).is_absolute()
    for m in mats["audios"]:
        _check_keys(m, spec["audio_material"], "audio material")
    for m in mats["texts"]:
        _check_keys(m, spec["text_material"], "text material")
        assert json.loads(m["content"])["text"]
    for m in mats["speeds"]:
        _check_keys(m, spec["speed_material"], "speed")
    total = 0
    for track in content["tracks"]:
        _check_keys(track, spec["track"], "track")
        assert track["type"] in ("video", "audio", "text")
        prev_end = 0
        for seg in track["segments"]:
            assert seg["material_id"] in ids
            assert all(r in ids for r in seg["extra_material_refs"])
            _check_keys(seg["target_timerange"], spec["timerange"], "target_timerange")
            assert seg["target_timerange"]["start"] >= prev_end  # no overlaps on a track
            prev_end = seg["target_timerange"]["start"] + seg["target_timerange"]["duration"]
            total = max(total, prev_end)
            if track["type"] != "text":
                _check_keys(seg, spec["media_segment"], "segment")
                _check_keys(seg["clip"], spec["clip"], "clip")
                assert seg["source_timerange"]["duration"] == seg["target_timerange"]["duration"]  # speed 1
    assert content["duration"] == total
    _check_keys(meta, spec["draft_meta_info"], "draft_meta_info")
    assert [m["type"] for m in meta["draft_materials"]] == spec["draft_material_types"]
    assert meta["tm_duration"] == content["duration"]


@pytest.mark.parametrize("fps", RATES, ids=str)
def test_microseconds_round_trip_every_frame(fps: Fraction) -> None:
    assert all(us_to_frames(frames_to_us(f, fps), fps) == f for f in range(0, 200_000, 7))


def test_fcpxml_times_are_exact_rationals(tmp_path: Path) -> None:
    tl = sample(Fraction(24000, 1001), tmp_path)
    path, _ = export_timeline(tl, tmp_path / "ep.fcpxml", "fcpxml")
    text = path.read_text(encoding="utf-8")
    assert 'frameDuration="1001/24000s"' in text
    assert 'offset="101101/24000s"' in text  # frame 101 at 23.976
    assert "Cross Dissolve" in text


def test_fcp7_uses_ntsc_timebase(tmp_path: Path) -> None:
    tl = sample(Fraction(30000, 1001), tmp_path)
    path, _ = export_timeline(tl, tmp_path / "ep.xml", "fcp7")
    text = path.read_text(encoding="utf-8")
    assert "<timebase>30</timebase>" in text and "<ntsc>TRUE</ntsc>" in text


def test_json_round_trip_and_validation(tmp_path: Path) -> None:
    tl = sample(Fraction(24000, 1001), tmp_path)
    assert Timeline.load(tl.save(tmp_path / "tl.json")) == tl
    bad = tl.with_tracks([Track("video", "V1", (Clip(tl.tracks[0].clips[0].media, 0, 10), Clip(tl.tracks[0].clips[0].media, 5, 10)))])
    with pytest.raises(InputError, match="overlap"):
        bad.validate()
    with pytest.raises(InputError, match="malformed"):
        Timeline.from_dict({"fps": "x"})
    with pytest.raises(InputError, match="unknown export format"):
        export_timeline(tl, tmp_path / "x", "avid")


def test_rates_and_rounding() -> None:
    assert nominal_fps(23.976023976) == Fraction(24000, 1001)
    assert nominal_fps(29.97) == Fraction(30000, 1001)
    assert nominal_fps(25.0) == 25
    assert seconds_to_frames(Fraction(1001, 24000) * 5, Fraction(24000, 1001)) == 5


def test_pieces_see_through_representations(tmp_path: Path) -> None:
    fps = Fraction(25)
    a = MediaRef("a.mp4", fps, 500)
    b = MediaRef("b.mp4", fps, 500)
    # OTIO style: clips touch at the cut, dissolve over both
    one = Track("video", "V", (Clip(a, 0, 100, 10), Clip(b, 100, 50, 30)), (Transition("dissolve", 100, 6, 6),))
    # EDL style: A ends where the dissolve starts, B starts there 6 frames earlier in its source
    two = Track("video", "V", (Clip(a, 0, 94, 10), Clip(b, 94, 56, 24)), (Transition("dissolve", 100, 6, 6),))
    assert picture_pieces(one, fps) == picture_pieces(two, fps)
    three = Track("video", "V", (Clip(a, 0, 94, 10), Clip(b, 94, 56, 25)), (Transition("dissolve", 100, 6, 6),))
    assert picture_pieces(one, fps) != picture_pieces(three, fps)
