"""Editor hand-off: exports checked by independent readers (OTIO and its adapters, pyJianYingDraft,
xmllint with Apple's DTD), portable paths and packaging, each sound once, subtitles everywhere,
unique EDL reels, and the exporter registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest

from core.errors import InputError, MediaError
from core.timeline import Caption, Clip, MediaRef, Timeline, Track, Transition
from pipelines.timeline import (
    EXPORT_FORMATS,
    EXPORTERS,
    MediaPlan,
    TimelineExporter,
    export_timeline,
)
from pipelines.timeline.edl import REEL_LEN, ascii_title, reel_names
from pipelines.timeline.jianying import read_draft
from pipelines.timeline.otio_io import read_timeline
from pipelines.timeline.portable import TargetRoot, path_from_url

WIN_ROOT = "C:/Users/NAME/Videos/drama"
MAC_ROOT = "/Users/NAME/Movies/drama"
DTD_HELP = ("Apple's FCPXML DTDs are not shipped (Apple, all rights reserved): set REELFORGE_FCPXML_DTD_DIR to a "
            "folder holding FCPXMLv1_9.dtd, copied from Final Cut Pro (Final Cut Pro.app/Contents/Frameworks/"
            "Interchange.framework/Versions/A/Resources/) or from the CommandPost repository "
            "(src/extensions/cp/apple/fcpxml/dtd/)")


def _media(folder: Path, name: str, fps: Fraction, frames: int, *, video: bool = True, audio: bool = True,
           size: int = 2048) -> MediaRef:
    """A media file with recognisable bytes (packaging copies bytes; no decoder reads them here)."""
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(name.encode("utf-8") * (size // max(1, len(name.encode("utf-8")))))
    return MediaRef(str(p), fps, frames, 640 if video else 0, 360 if video else 0, video, audio)


def episode(tmp: Path, fps: Fraction = Fraction(25), shots: int = 3) -> Timeline:
    """A generated episode's shape: shot videos that carry their dialogue, the shot WAVs on the
    dialogue track, music, captions, a dissolve and fades."""
    synth = tmp / "proj" / "synth" / "ep01"
    pics = [_media(synth / "shots", f"e01s01k{i:02d}.mp4", fps, 100) for i in range(shots)]
    wavs = [_media(synth / "audio", f"e01s01k{i:02d}.wav", fps, 100, video=False) for i in range(shots)]
    music = _media(tmp / "proj" / "music", "主题曲 v2.wav", fps, 5000, video=False)
    v, a, caps, t = [], [], [], 0
    for i, (pic, wav) in enumerate(zip(pics, wavs, strict=True)):
        v.append(Clip(pic, t, 80, 4, name=f"e01s01k{i:02d}"))
        a.append(Clip(wav, t, 80, 4, name=f"e01s01k{i:02d}"))
        caps.append(Caption(t + 5, t + 60, f"第{i + 1}句台词", "阿Q"))
        t += 80
    trans = (Transition("dissolve", 80, 4, 4), Transition("fade_in", 0, 0, 12), Transition("fade_out", t, 12, 0))
    tracks = (Track("video", "V1", tuple(v), trans), Track("audio", "A1", tuple(a), role="dialogue"),
              Track("audio", "A2", (Clip(music, 0, t, 0, name="music", gain_db=-12.0),), role="music"))
    return Timeline("测试剧 第1集", fps, 640, 360, tracks, captions=tuple(caps),
                    metadata={"episode": "1"}).validate()


def all_strings(value: object) -> list[str]:
    """Every string in a JSON document, descending into strings that hold JSON themselves."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += [k] + all_strings(v)
    elif isinstance(value, list):
        for v in value:
            out += all_strings(v)
    elif isinstance(value, str):
        out.append(value)
        if value.startswith(("{", "[")):
            try:
                out += all_strings(json.loads(value))
            except ValueError:
                pass
    return out


# -- target roots --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "windows", "written"), [
    ("C:/Users/NAME/Videos/drama", True, "C:/Users/NAME/Videos/drama"),
    ("c:\\Users\\NAME\\Videos\\drama\\", True, "C:/Users/NAME/Videos/drama"),
    ("//nas/share/剧集", True, "//nas/share/剧集"),
    ("/Users/NAME/Movies/drama/", False, "/Users/NAME/Movies/drama"),
])
def test_target_roots_parse_to_their_os_form(text: str, windows: bool, written: str) -> None:
    root = TargetRoot.parse(text)
    assert root.windows is windows and root.text() == written
    if windows:
        assert root.text(native=True) == written.replace("/", "\\")


@pytest.mark.parametrize("bad", ["", "drama", "./x", "C:drama", "C:/a/../b", "C:/bad|name", "/a/../b"])
def test_bad_target_roots_are_refused_with_a_hint(bad: str) -> None:
    with pytest.raises(InputError) as e:
        TargetRoot.parse(bad)
    assert e.value.hint


# -- 剪映: packaged for a Windows machine (the "done when") ----------------------------
def test_packaged_jianying_draft_for_windows_holds_every_file_under_the_root(tmp_path: Path) -> None:
    tl = episode(tmp_path)
    out = tmp_path / "proj" / "out"
    folder, notes = export_timeline(tl, out / "ep01_jianying", "jianying", target_root=WIN_ROOT, package="copy")
    content = json.loads((folder / "draft_content.json").read_text(encoding="utf-8"))
    meta = json.loads((folder / "draft_meta_info.json").read_text(encoding="utf-8"))
    draft_root = f"{WIN_ROOT}/ep01_jianying"
    assert meta["draft_fold_path"] == draft_root
    assert meta["draft_root_path"] == WIN_ROOT.replace("/", "\\")
    referenced = [m["path"] for kind in ("videos", "audios") for m in content["materials"][kind]]
    referenced += [v["file_Path"] for v in meta["draft_materials"][0]["value"]]
    used = {c.media.path for t in tl.tracks for c in t.clips}
    assert len(set(referenced)) == len(used) == 7
    for path in referenced:
        assert path.startswith(draft_root + "/media/"), path
        local = folder / path[len(draft_root) + 1:]
        assert local.is_file(), f"{path} is referenced but not in the package"
    # every packaged file is byte-identical to its source
    for src in used:
        name = Path(src).name.replace(" ", "_")
        assert (folder / "media" / name).read_bytes() == Path(src).read_bytes()
    # no path of this machine anywhere, in any string of any file of the draft
    here = [str(tmp_path), str(tmp_path.resolve()), os.path.expanduser("~"), "/tmp"]
    for f in folder.glob("*.json"):
        for s in all_strings(json.loads(f.read_text(encoding="utf-8"))):
            assert not any(h in s for h in here), f"{f.name}: {s!r}"
            assert not s.startswith("/"), f"{f.name}: {s!r}"
            if ":/" in s or ":\\" in s:
                assert s.startswith(("C:/Users/NAME/Videos/drama", "C:\\Users\\NAME\\Videos\\drama")), s
    assert content["platform"]["os"] == "windows"
    assert not any("not in the export" in n for n in notes)


def test_pyjianyingdraft_loads_our_draft_and_sees_each_sound_once(tmp_path: Path) -> None:
    draft_mod = pytest.importorskip("pyJianYingDraft", reason="pip install pyJianYingDraft (test dependency)")
    tl = episode(tmp_path)
    drafts = tmp_path / "JianyingPro Drafts"
    folder, _ = export_timeline(tl, drafts / "第1集", "jianying", target_root=MAC_ROOT, package="link")
    script = draft_mod.DraftFolder(str(drafts)).load_template("第1集")
    assert (script.width, script.height) == (640, 360)
    kinds = [t.track_type for t in script.list_imported_tracks()]
    assert kinds == [draft_mod.TrackType.video, draft_mod.TrackType.audio, draft_mod.TrackType.audio,
                     draft_mod.TrackType.text]
    video = script.get_imported_track(draft_mod.TrackType.video)
    assert [s.target_timerange.start for s in video.segments] == [0, 3_200_000, 6_400_000]
    assert all(s.raw_data["volume"] == 0.0 for s in video.segments)  # the shot's own sound is off
    dialogue = script.get_imported_track(draft_mod.TrackType.audio, name="A1")
    assert all(s.raw_data["volume"] == 1.0 for s in dialogue.segments)  # the voice plays, once
    texts = {m["id"]: m for m in script.imported_materials["texts"]}
    subs = script.get_imported_track(draft_mod.TrackType.text)
    assert len(subs) == 3
    for seg in subs.segments:
        mat = texts[seg.material_id]
        content = json.loads(mat["content"])
        assert content["styles"][0]["strokes"] and mat["check_flag"] == 15  # outline set and switched on
    script.replace_text(subs, 0, "改过的台词")  # the reader edits our text material
    again = json.loads(script.dumps())
    assert any("改过的台词" in m["content"] for m in again["materials"]["texts"])
    paths = [m["path"] for m in again["materials"]["videos"]]
    assert all(p.startswith(f"{MAC_ROOT}/第1集/media/") for p in paths)
    # hard links: the package costs no space on this disk
    assert all(os.path.samefile(folder / "media" / Path(p).name, src)
               for p, src in zip(paths, [c.media.path for c in tl.tracks[0].clips], strict=True))
    back = read_draft(folder)
    assert [c.start for c in back.tracks[0].clips] == [c.start for c in tl.tracks[0].clips]
    assert [c.text for c in back.captions] == [c.text for c in tl.captions]


def test_target_root_without_package_keeps_places_relative_and_says_so(tmp_path: Path) -> None:
    tl = episode(tmp_path)
    out = tmp_path / "proj" / "out"
    path, notes = export_timeline(tl, out / "ep01.fcpxml", "fcpxml", target_root="Z:/drama")
    srcs = [r.get("src") for r in ET.parse(path).getroot().iter("media-rep")]
    # the export sits in out/, so Z:/drama stands for the project folder that holds out/
    assert "file:///Z:/drama/synth/ep01/shots/e01s01k00.mp4" in srcs
    assert "file:///Z:/drama/music/%E4%B8%BB%E9%A2%98%E6%9B%B2%20v2.wav" in srcs
    assert any("not in the export" in n and "Z:/drama/synth/ep01/shots/e01s01k00.mp4" in n for n in notes)
    with pytest.raises(InputError, match="leads above"):
        export_timeline(tl, tmp_path / "elsewhere" / "x" / "ep.fcpxml", "fcpxml", target_root="Z:/")


def test_names_windows_cannot_hold_need_the_package(tmp_path: Path) -> None:
    fps = Fraction(25)
    odd = _media(tmp_path / "footage", 'take:1 "best".mp4', fps, 100)
    tl = Timeline("x", fps, 640, 360, (Track("video", "V1", (Clip(odd, 0, 50),)),))
    with pytest.raises(InputError, match="cannot be named on Windows") as e:
        export_timeline(tl, tmp_path / "out" / "x.xml", "fcp7", target_root=WIN_ROOT)
    assert "--package" in (e.value.hint or "")
    path, _ = export_timeline(tl, tmp_path / "pkg" / "x.xml", "fcp7", target_root=WIN_ROOT, package="copy")
    url = ET.parse(path).getroot().findtext(".//pathurl")
    assert url == "file:///C:/Users/NAME/Videos/drama/pkg/media/take_1_best.mp4"
    assert (tmp_path / "pkg" / "media" / "take_1_best.mp4").read_bytes() == Path(odd.path).read_bytes()


def test_same_file_names_from_two_folders_stay_two_files(tmp_path: Path) -> None:
    fps = Fraction(25)
    a = _media(tmp_path / "a", "take.mp4", fps, 100)
    b = _media(tmp_path / "b", "TAKE.mp4", fps, 100, size=4096)
    tl = Timeline("x", fps, 640, 360, (Track("video", "V1", (Clip(a, 0, 50), Clip(b, 50, 50), Clip(a, 100, 20))),))
    folder, _ = export_timeline(tl, tmp_path / "d", "jianying", package="copy")
    files = sorted(p.name for p in (folder / "media").iterdir())
    assert files == ["TAKE_2.mp4", "take.mp4"]
    assert (folder / "media" / "TAKE_2.mp4").stat().st_size == Path(b.path).stat().st_size


def test_exporting_again_reuses_the_package(tmp_path: Path) -> None:
    tl = episode(tmp_path, shots=1)
    folder, _ = export_timeline(tl, tmp_path / "d", "jianying", target_root=WIN_ROOT, package="copy")
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "media").iterdir()}
    (folder / "media" / "e01s01k00.wav").write_bytes(b"damaged")  # a changed copy is copied again
    folder, _ = export_timeline(tl, tmp_path / "d", "jianying", target_root=WIN_ROOT, package="copy")
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "media").iterdir()}
    assert after == before
    assert (folder / "media" / "e01s01k00.wav").read_bytes() == Path(tl.tracks[1].clips[0].media.path).read_bytes()
    assert not list((folder / "media").glob(".*"))  # no temporary files left


def test_hard_link_falls_back_to_copy_and_reports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tl = episode(tmp_path, shots=1)

    def no_link(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    folder, notes = export_timeline(tl, tmp_path / "d", "jianying", target_root=WIN_ROOT, package="link")
    assert any("could not be hard-linked" in n and "copied instead" in n for n in notes)
    assert len(list((folder / "media").iterdir())) == 3


def test_packaging_refuses_missing_media_and_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tl = episode(tmp_path, shots=1)
    Path(tl.tracks[1].clips[0].media.path).unlink()
    with pytest.raises(InputError, match="missing"):
        export_timeline(tl, tmp_path / "d", "jianying", package="copy")
    tl = episode(tmp_path / "again", shots=1)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 10))  # type: ignore[attr-defined]
    with pytest.raises(MediaError, match="MB free"):
        export_timeline(tl, tmp_path / "d2", "jianying", package="copy")
    assert not (tmp_path / "d2" / "draft_content.json").exists()  # nothing half-written


# -- FCPXML ----------------------------------------------------------------------------------
def _dtd_for(path: Path) -> Path:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint is not installed (apt-get install libxml2-utils; scripts/bootstrap.sh does it)")
    version = ET.parse(path).getroot().get("version", "")
    name = f"FCPXMLv{version.replace('.', '_')}.dtd"
    folder = os.environ.get("REELFORGE_FCPXML_DTD_DIR", "")
    if folder and (Path(folder) / name).is_file():
        return Path(folder) / name
    pytest.skip(f"{name} not found. {DTD_HELP}")


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001)], ids=str)
def test_fcpxml_validates_against_apples_dtd_of_its_version(tmp_path: Path, fps: Fraction) -> None:
    tl = episode(tmp_path, fps)
    extra = Track("video", "V2", (Clip(tl.tracks[0].clips[1].media, 85, 30, 0),))  # a connected video lane
    tl = tl.with_tracks(list(tl.tracks) + [extra])
    path, _ = export_timeline(tl, tmp_path / "out" / "ep.fcpxml", "fcpxml", target_root=WIN_ROOT, package="copy")
    root = ET.parse(path).getroot()
    assert root.get("version") == "1.9"
    for el in root.iter():
        assert el.tag == "marker" or "note" not in el.attrib, f"<{el.tag} note=...> is not in the DTD"
    assert any(n.text == "track:V2" for n in root.iter("note"))
    dtd = _dtd_for(path)
    r = subprocess.run(["xmllint", "--noout", "--dtdvalid", str(dtd), str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_fcpxml_each_sound_once_and_captions(tmp_path: Path) -> None:
    tl = episode(tmp_path)
    path, _ = export_timeline(tl, tmp_path / "ep.fcpxml", "fcpxml")
    root = ET.parse(path).getroot()
    assets = {a.get("id"): a for a in root.iter("asset")}
    spine = root.find(".//spine")
    assert spine is not None
    audible: list[tuple[str, str]] = []
    for clip in root.iter("asset-clip"):
        a = assets[clip.get("ref")]
        plays_sound = a.get("hasAudio") == "1" and clip.get("srcEnable", "all") in ("all", "audio")
        if plays_sound:
            audible.append((a.get("name", ""), clip.get("offset", "")))
        if clip in list(spine):  # the shots: picture only
            assert clip.get("srcEnable") == "video"
    names = [n for n, _ in audible]
    assert sorted(names) == sorted(["e01s01k00", "e01s01k01", "e01s01k02", "主题曲 v2"])  # each sound once
    caps = list(root.iter("caption"))
    assert [c.findtext("text/text-style") for c in caps] == [c.text for c in tl.captions]
    assert all(c.get("role") == "iTT?captionFormat=ITT.zh" for c in caps)
    back = read_timeline(path, "fcpxml")
    assert back.captions == tl.captions
    kinds = [(t.kind, t.at, t.before, t.after) for t in back.tracks[0].transitions]
    assert sorted(kinds) == sorted((t.kind, t.at, t.before, t.after) for t in tl.tracks[0].transitions)


# -- EDL -------------------------------------------------------------------------------------
def test_reel_names_are_short_unique_stable_and_ascii() -> None:
    files = [f"/p/synth/ep01/shots/e01s{s:02d}k{k:02d}.mp4" for s in range(1, 4) for k in range(7)]
    files += ["/p/footage/镜头一.mov", "/p/footage/镜头二.mov", "/p/a/BL.mp4", "/p/b/shot_a.mp4", "/p/c/shota.mov"]
    reels = reel_names(files)
    assert len(set(reels.values())) == len(files) == 26
    for r in reels.values():
        assert 0 < len(r) <= REEL_LEN and r.isascii() and r.isalnum() and r == r.upper()
    assert reels["/p/b/shot_a.mp4"] == "SHOTA" and reels["/p/c/shota.mov"] != "SHOTA"
    assert reels["/p/a/BL.mp4"] not in ("BL", "BLACK")  # "BL" means black in an EDL
    assert reel_names(list(reversed(files))) == reels  # stable whatever the order
    assert {k: v for k, v in reel_names(files[:5]).items()} == {f: reels[f] for f in files[:5]}


def test_edl_reels_unique_with_full_names_and_ascii_header(tmp_path: Path) -> None:
    tl = episode(tmp_path, shots=21)
    tl = tl.with_tracks([Track("video", "V1", tl.tracks[0].clips), tl.tracks[1]])  # hard cuts: one event per shot
    path, notes = export_timeline(tl, tmp_path / "pkg" / "ep.edl", "edl", target_root=WIN_ROOT, package="copy")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    header = lines[:lines.index("")]
    assert header == ["TITLE: EP01", "FCM: NON-DROP FRAME"] and all(ln.isascii() for ln in header)
    events = [ln for ln in lines if ln[:3].isdigit()]
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("* FROM CLIP NAME:")]
    urls = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("* FROM CLIP:")]
    reel_of: dict[str, str] = {}
    for ev, name, url in zip(events, names, urls, strict=True):
        reel = ev.split()[1]
        assert reel_of.setdefault(reel, name) == name, f"reel {reel} names two sources"
        assert url == f"file:///C:/Users/NAME/Videos/drama/pkg/media/{name}"
        assert path_from_url(url) == f"{WIN_ROOT}/pkg/media/{name}"
    assert len(reel_of) == 21
    assert any("subtitle" in n for n in notes)
    back = read_timeline(path, "edl", fps=tl.fps)
    assert [Path(c.media.path).name for c in back.tracks[0].clips] == [Path(c.media.path).name for c in tl.tracks[0].clips]


def test_ascii_title() -> None:
    fps = Fraction(25)
    assert ascii_title(Timeline("Ah Q, Ep. 3 — 第3集", fps, 2, 2)) == "Ah Q, Ep. 3 3"
    assert ascii_title(Timeline("测试剧 第12集", fps, 2, 2, metadata={"episode": "12"})) == "EP12"
    assert ascii_title(Timeline("测试剧", fps, 2, 2)) == "REELFORGE"


# -- every format: OTIO reads it back, subtitles travel -------------------------------------
def _otio_read(path: Path, adapter: str, fps: Fraction) -> object:
    otio = pytest.importorskip("opentimelineio")
    if adapter not in otio.adapters.available_adapter_names():
        pytest.skip(f"the OTIO adapter {adapter} is not installed (a test dependency: pip install 'reelforge[dev]')")
    kwargs = {"rate": float(fps)} if adapter == "cmx_3600" else {}
    ot = otio.adapters.read_from_file(str(path), adapter_name=adapter, **kwargs)
    if isinstance(ot, otio.schema.SerializableCollection):
        ot = next(iter(ot.find_children(descended_from_type=otio.schema.Timeline)))
    return ot


@pytest.mark.parametrize(("fmt", "adapter"), [("otio", "otio_json"), ("fcp7", "fcp_xml"), ("edl", "cmx_3600"),
                                              ("fcpxml", "fcpx_xml")])
def test_otio_reads_back_every_format(tmp_path: Path, fmt: str, adapter: str) -> None:
    tl = episode(tmp_path)
    suffix = EXPORTERS.create(fmt).suffix
    path, _ = export_timeline(tl, tmp_path / "pkg" / f"ep{suffix}", fmt, target_root=MAC_ROOT, package="copy")
    ot = _otio_read(path, adapter, tl.fps)
    otio = pytest.importorskip("opentimelineio")
    picture = [c for t in ot.tracks if t.kind == otio.schema.TrackKind.Video  # type: ignore[attr-defined]
               for c in t if isinstance(c, otio.schema.Clip) and c.name != "Text"
               and not isinstance(c.media_reference, otio.schema.GeneratorReference)]
    starts = [round(c.range_in_parent().start_time.to_frames()) for c in picture]
    if fmt == "edl":  # the dissolve is written as the outgoing clip up to its start
        assert starts == [0, 76, 160] and len(ot.tracks) == 1  # type: ignore[attr-defined]
    else:
        assert starts == [0, 80, 160]
    if fmt == "fcpxml":
        # otio-fcpx-xml-adapter 1.0.0 reads media only from the 1.8 'src' attribute; 1.9 has <media-rep>
        # (our own reader checks those: test_fcpxml_each_sound_once_and_captions)
        assert [c.name for c in picture] == ["e01s01k00", "e01s01k01", "e01s01k02"]
        return
    urls = {c.media_reference.target_url for c in ot.find_clips()  # type: ignore[attr-defined]
            if getattr(c.media_reference, "target_url", "")}
    assert urls and all(u.startswith(f"file://{MAC_ROOT}/pkg/media/") for u in urls), urls
    # otio-cmx3600-adapter 1.0.0 gives a dissolve's incoming clip the outgoing clip's media (it reads
    # only FROM CLIP); read_timeline corrects that from TO CLIP (test_edl_reels_unique_...)
    assert len(urls) == (2 if fmt == "edl" else 7)


@pytest.mark.parametrize("fmt", ["otio", "fcp7", "fcpxml", "jianying"])
def test_subtitles_travel_in_every_format_that_has_them(tmp_path: Path, fmt: str) -> None:
    tl = episode(tmp_path)
    exp = EXPORTERS.create(fmt)
    path, notes = export_timeline(tl, tmp_path / exp.default_name("ep01"), fmt)
    back = read_draft(path) if fmt == "jianying" else read_timeline(path, fmt, fps=tl.fps)
    assert [(c.start, c.end, c.text) for c in back.captions] == [(c.start, c.end, c.text) for c in tl.captions]
    assert not any("subtitle" in n for n in notes)


def test_fcp7_shots_take_picture_only(tmp_path: Path) -> None:
    tl = episode(tmp_path)
    path, _ = export_timeline(tl, tmp_path / "ep.xml", "fcp7")
    root = ET.parse(path).getroot()
    video = root.find("sequence/media/video")
    audio = root.find("sequence/media/audio")
    assert video is not None and audio is not None
    assert {i.findtext("sourcetrack/mediatype") for i in video.iter("clipitem")} == {"video"}
    assert {i.findtext("sourcetrack/mediatype") for i in audio.iter("clipitem")} == {"audio"}
    assert [g.findtext("effect/parameter/value") for g in video.iter("generatoritem")] == [c.text for c in tl.captions]


# -- the registry ------------------------------------------------------------------------------
def test_exporters_come_from_one_registry_and_plugins_join_it(tmp_path: Path) -> None:
    assert set(EXPORT_FORMATS) <= set(EXPORTERS.names())
    assert all(s.available for s in EXPORTERS.status() if s.name in EXPORT_FORMATS)

    class Csv(TimelineExporter):
        name = "csvtest"
        suffix = ".csv"

        def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
            rows = [f"{c.start},{c.end},{media.path(c.media.path)}" for t in tl.tracks for c in t.clips]
            dst.write_text("\n".join(rows), encoding="utf-8")
            return ["csv keeps no transitions"]

    EXPORTERS.add("csvtest", Csv, description="test")
    try:
        tl = episode(tmp_path, shots=1)
        path, notes = export_timeline(tl, tmp_path / "pkg" / "x.csv", "csvtest", target_root=WIN_ROOT, package="copy")
        assert "C:/Users/NAME/Videos/drama/pkg/media/e01s01k00.mp4" in path.read_text(encoding="utf-8")
        assert notes[-1] == "csv keeps no transitions"
    finally:
        EXPORTERS.remove("csvtest")
    with pytest.raises(InputError, match="unknown export format 'avid'") as e:
        export_timeline(tl, tmp_path / "x", "avid")
    assert "jianying" in (e.value.hint or "")
