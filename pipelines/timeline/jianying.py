"""剪映专业版 (JianyingPro) draft folders: ``draft_content.json`` + ``draft_meta_info.json``.

The layout is the *unencrypted* draft of 剪映专业版 5.x (we write ``version`` 360000,
``new_version`` "110.0.0", ``app_version`` "5.9.0", the last 5.x release). 剪映 6.0 and later
encrypt ``draft_content.json``: they still open 5.x drafts placed in their drafts folder, but
we cannot read drafts saved by 6.x, and nothing here decrypts them. CapCut (the international
app) uses the same JSON layout in its unencrypted versions.

Times in a draft are integer microseconds. A frame at 23.976 is 41708.33 µs, so we round each
boundary from the exact rational time (never accumulate), and reading back rounds to the
nearest frame: the cuts survive to the frame at any rate up to 1000 fps.

Kept: video and audio tracks (clips, source in/out, volume), captions as a text track (white,
black outline: ``check_flag`` 15 says the outline is on, as pyJianYingDraft and the app write
it), the canvas size and fps. Each sound once: video segments are muted (volume 0; unmuting in
剪映 restores 1.0) because the dialogue comes from the voice track. Not written (reported as
notes): dissolves and fades — 剪映 stores them as effect resources downloaded from its own store
by id, which we do not ship; add 叠化 in 剪映.

Portable drafts: the draft folder is the package. With ``--target-root`` (剪映's drafts folder on
the editing machine) every material path, ``draft_fold_path`` and ``draft_root_path`` is written
as it will be there; with ``--package`` the media are copied into ``media/`` of the draft.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import InputError
from core.timeline import Caption, Clip, MediaRef, Timeline, Track
from pipelines.timeline.base import TimelineExporter
from pipelines.timeline.portable import MediaPlan

log = logging.getLogger(__name__)

DRAFT_VERSION = 360000
NEW_VERSION = "110.0.0"
APP_VERSION = "5.9.0"
US = 1_000_000


def frames_to_us(frames: int, fps: Fraction) -> int:
    v = Fraction(frames) * US / fps
    return int(v + Fraction(1, 2))


def us_to_frames(us: int, fps: Fraction) -> int:
    v = Fraction(us) * fps / US
    return int(v + Fraction(1, 2))


def _id(seed: str) -> str:
    # stable ids (uuid5) so re-exporting the same timeline gives the same draft
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "reelforge:" + seed)).upper()


def _speed(seed: str) -> dict[str, Any]:
    return {"curve_speed": None, "id": _id(seed), "mode": 0, "speed": 1.0, "type": "speed"}


def _timerange(start: int, duration: int) -> dict[str, int]:
    return {"duration": duration, "start": start}


def _video_material(m: MediaRef, mid: str, path: str) -> dict[str, Any]:
    return {
        "aigc_type": "none", "audio_fade": None, "cartoon_path": "", "category_id": "", "category_name": "local",
        "check_flag": 63487,
        "crop": {"lower_left_x": 0.0, "lower_left_y": 1.0, "lower_right_x": 1.0, "lower_right_y": 1.0,
                 "upper_left_x": 0.0, "upper_left_y": 0.0, "upper_right_x": 1.0, "upper_right_y": 0.0},
        "crop_ratio": "free", "crop_scale": 1.0, "duration": frames_to_us(max(m.frames, 1), m.fps),
        "extra_type_option": 0, "formula_id": "", "freeze": None, "has_audio": m.has_audio, "height": m.height,
        "id": mid, "intensifies_audio_path": "", "intensifies_path": "", "is_ai_generate_content": True,
        "is_copyright": False, "is_text_edit_overdub": False, "is_unified_beauty_mode": False, "local_id": "",
        "local_material_id": "", "material_id": mid, "material_name": PurePosixPath(path).name, "material_url": "",
        "matting": {"flag": 0, "has_use_quick_brush": False, "has_use_quick_eraser": False, "interactiveTime": [],
                    "path": "", "strokes": []},
        "media_path": "", "object_locked": None, "origin_material_id": "", "path": path,
        "picture_from": "none", "picture_set_category_id": "", "picture_set_category_name": "", "request_id": "",
        "reverse_intensifies_path": "", "reverse_path": "", "smart_motion": None, "source": 0, "source_platform": 0,
        "stable": {"matrix_path": "", "stable_level": 0, "time_range": {"duration": 0, "start": 0}},
        "team_id": "", "type": "video",
        "video_algorithm": {"algorithms": [], "complement_frame_config": None, "deflicker": None,
                            "gameplay_configs": [], "motion_blur_config": None, "noise_reduction": None,
                            "path": "", "quality_enhance": None, "time_range": None},
        "width": m.width,
        # our own: the exact rate, so a round trip keeps source frames exact
        "reelforge_fps": f"{m.fps.numerator}/{m.fps.denominator}", "reelforge_frames": m.frames,
    }


def _audio_material(m: MediaRef, mid: str, path: str) -> dict[str, Any]:
    return {
        "app_id": 0, "category_id": "", "category_name": "local", "check_flag": 1, "copyright_limit_type": "none",
        "duration": frames_to_us(max(m.frames, 1), m.fps), "effect_id": "", "formula_id": "", "id": mid,
        "intensifies_path": "", "is_ai_clone_tone": False, "is_text_edit_overdub": False, "is_ugc": False,
        "local_material_id": mid, "music_id": mid, "name": PurePosixPath(path).name, "path": path,
        "query": "", "request_id": "", "resource_id": "", "search_id": "", "source_from": "", "source_platform": 0,
        "team_id": "", "text_id": "", "tone_category_id": "", "tone_category_name": "", "tone_effect_id": "",
        "tone_effect_name": "", "tone_platform": "", "tone_second_category_id": "", "tone_second_category_name": "",
        "tone_speaker": "", "tone_type": "", "type": "extract_music", "video_id": "", "wave_points": [],
        "reelforge_fps": f"{m.fps.numerator}/{m.fps.denominator}", "reelforge_frames": m.frames,
    }


def _text_material(text: str, mid: str) -> dict[str, Any]:
    content = {"styles": [{"fill": {"alpha": 1.0, "content": {"render_type": "solid",
                                                              "solid": {"alpha": 1.0, "color": [1.0, 1.0, 1.0]}}},
                           "range": [0, len(text)], "size": 8.0, "bold": False, "italic": False, "underline": False,
                           "strokes": [{"content": {"solid": {"alpha": 1.0, "color": [0.0, 0.0, 0.0]}},
                                        "width": 0.08}]}],
               "text": text}
    return {
        "add_type": 0, "alignment": 1, "background_alpha": 1.0, "background_color": "", "base_content": "",
        # 7 = text, style and layout; +8 = the outline (strokes) is on
        "bold_width": 0.0, "check_flag": 7 | 8, "combo_info": {"text_templates": []},
        "content": json.dumps(content, ensure_ascii=False), "fixed_height": -1.0, "fixed_width": -1.0,
        "force_apply_line_max_width": False, "group_id": "", "id": mid, "initial_scale": 1.0, "inner_padding": -1.0,
        "is_rich_text": False, "italic_degree": 0, "ktv_color": "", "language": "", "layer_weight": 1,
        "letter_spacing": 0.0, "line_feed": 1, "line_max_width": 0.82, "line_spacing": 0.02,
        "multi_language_current": "none", "name": "", "original_size": [], "preset_category": "",
        "preset_category_id": "", "preset_has_set_alignment": False, "preset_id": "", "preset_index": 0,
        "preset_name": "", "recognize_task_id": "", "recognize_type": 0, "relevance_segment": [],
        "shape_clip_x": False, "shape_clip_y": False, "source_from": "", "style_name": "", "sub_type": 0,
        "subtitle_keywords": None, "subtitle_template_original_fontsize": 0.0, "text_to_audio_ids": [],
        "tts_auto_update": False, "type": "subtitle", "underline_offset": 0.22, "underline_width": 0.05,
        "use_effect_default_color": True, "words": {"end_time": [], "start_time": [], "text": []},
    }


def _segment(seg_id: str, material_id: str, target: dict[str, int], source: dict[str, int] | None,
             refs: list[str], volume: float, render_index: int, *, text: bool = False) -> dict[str, Any]:
    seg: dict[str, Any] = {
        "caption_info": None, "cartoon": False, "common_keyframes": [], "enable_adjust": not text,
        "enable_color_correct_adjust": False, "enable_color_curves": True, "enable_color_match_adjust": False,
        "enable_color_wheels": True, "enable_lut": not text, "enable_smart_color_adjust": False,
        "extra_material_refs": refs, "group_id": "", "id": seg_id, "intensifies_audio": False,
        "is_placeholder": False, "is_tone_modify": False, "keyframe_refs": [], "last_nonzero_volume": 1.0,
        "material_id": material_id, "render_index": render_index,
        "responsive_layout": {"enable": False, "horizontal_pos_layout": 0, "size_layout": 0,
                              "target_follow": "", "vertical_pos_layout": 0},
        "reverse": False, "source_timerange": source, "speed": 1.0, "target_timerange": target,
        "template_id": "", "template_scene": "default", "track_attribute": 0, "track_render_index": 0,
        "uniform_scale": {"on": True, "value": 1.0}, "visible": True, "volume": volume,
    }
    if not text:
        seg["clip"] = {"alpha": 1.0, "flip": {"horizontal": False, "vertical": False}, "rotation": 0.0,
                       "scale": {"x": 1.0, "y": 1.0}, "transform": {"x": 0.0, "y": 0.0}}
        seg["hdr_settings"] = {"intensity": 1.0, "mode": 1, "nits": 1000}
    else:
        seg["clip"] = {"alpha": 1.0, "flip": {"horizontal": False, "vertical": False}, "rotation": 0.0,
                       "scale": {"x": 1.0, "y": 1.0}, "transform": {"x": 0.0, "y": -0.75}}
    return seg


def draft_content(tl: Timeline, notes: list[str] | None = None, media: MediaPlan | None = None) -> dict[str, Any]:
    """The ``draft_content.json`` document for ``tl`` (media named through ``media``)."""
    tl.validate()
    plan = media or MediaPlan(anchor=Path.cwd())
    fps = tl.fps
    seed = f"{tl.name}|{tl.fps}|{len(tl.tracks)}"
    materials: dict[str, list[Any]] = {k: [] for k in (
        "ai_translates", "audio_balances", "audio_effects", "audio_fades", "audio_track_indexes", "audios", "beats",
        "canvases", "chromas", "color_curves", "digital_humans", "drafts", "effects", "flowers", "green_screens",
        "handwrites", "hsl", "images", "log_color_wheels", "loudnesses", "manual_deformations", "masks",
        "material_animations", "material_colors", "multi_language_refs", "placeholders", "plugin_effects",
        "primary_color_wheels", "realtime_denoises", "shapes", "smart_crops", "smart_relights",
        "sound_channel_mappings", "speeds", "stickers", "tail_leaders", "text_templates", "texts", "time_marks",
        "transitions", "video_effects", "video_trackings", "videos", "vocal_beautifys", "vocal_separations")}
    media_ids: dict[tuple[str, str], str] = {}
    tracks: list[dict[str, Any]] = []
    render = 0
    for ti, track in enumerate(tl.tracks):
        segs = []
        for ci, clip in enumerate(sorted(track.clips, key=lambda c: c.start)):
            key = (track.kind, clip.media.path)
            if key not in media_ids:
                mid = _id(f"{seed}|m|{track.kind}|{clip.media.path}")
                media_ids[key] = mid
                path = plan.path(clip.media.path)
                materials["videos" if track.kind == "video" else "audios"].append(
                    _video_material(clip.media, mid, path) if track.kind == "video"
                    else _audio_material(clip.media, mid, path))
            sp = _speed(f"{seed}|s|{ti}|{ci}")
            materials["speeds"].append(sp)
            start_us = frames_to_us(clip.start, fps)
            dur_us = frames_to_us(clip.end, fps) - start_us
            src_start = frames_to_us(clip.source_in, clip.media.fps)
            volume = 10 ** (clip.gain_db / 20) if clip.gain_db else 1.0
            if track.kind == "video" and clip.media.has_audio:
                volume = 0.0  # each sound once: the dialogue plays from the voice track
            segs.append(_segment(_id(f"{seed}|seg|{ti}|{ci}"), media_ids[key], _timerange(start_us, dur_us),
                                 _timerange(src_start, dur_us), [sp["id"]], round(volume, 6),
                                 render if track.kind == "video" else 0))
        if track.transitions and notes is not None:
            notes.append(f"{len(track.transitions)} transition(s) on track {track.name!r} are not written to the "
                         "剪映 draft (its transitions are store effects); add 叠化 in 剪映")
        tracks.append({"attribute": 0, "flag": 0, "id": _id(f"{seed}|t|{ti}"), "is_default_name": False,
                       "name": track.name, "segments": segs, "type": track.kind})
        if track.kind == "video":
            render += 1
    if tl.captions:
        segs = []
        for i, cap in enumerate(tl.captions):
            mid = _id(f"{seed}|txt|{i}")
            materials["texts"].append(_text_material(cap.text, mid))
            start_us = frames_to_us(cap.start, fps)
            segs.append(_segment(_id(f"{seed}|tseg|{i}"), mid, _timerange(start_us, frames_to_us(cap.end, fps) - start_us),
                                 None, [], 1.0, 14000, text=True))
        tracks.append({"attribute": 0, "flag": 1, "id": _id(f"{seed}|t|captions"), "is_default_name": False,
                       "name": "字幕", "segments": segs, "type": "text"})
    duration = frames_to_us(tl.duration, fps)
    ratio = "original"
    return {
        "canvas_config": {"height": tl.height, "ratio": ratio, "width": tl.width},
        "color_space": 0,
        "config": {"adjust_max_index": 1, "attachment_info": [], "combination_max_index": 1, "export_range": None,
                   "extract_audio_last_index": 1, "lyrics_recognition_id": "", "lyrics_sync": True,
                   "lyrics_taskinfo": [], "maintrack_adsorb": True, "material_save_mode": 0,
                   "multi_language_current": "none", "multi_language_list": [], "multi_language_main": "none",
                   "multi_language_mode": "none", "original_sound_last_index": 1, "record_audio_last_index": 1,
                   "sticker_max_index": 1, "subtitle_keywords_config": None, "subtitle_recognition_id": "",
                   "subtitle_sync": True, "subtitle_taskinfo": [], "system_font_list": [], "video_mute": False,
                   "zoom_info_params": None},
        "cover": None, "create_time": 0, "duration": duration, "extra_info": None, "fps": float(fps),
        "free_render_index_mode_on": False, "group_container": None, "id": _id(f"{seed}|draft"),
        "keyframe_graph_list": [],
        "keyframes": {k: [] for k in ("adjusts", "audios", "effects", "filters", "handwrites", "stickers", "texts",
                                      "videos")},
        "last_modified_platform": {"app_id": 3704, "app_source": "lv", "app_version": APP_VERSION, "os": "windows"},
        "materials": materials, "mutable_config": None, "name": tl.name, "new_version": NEW_VERSION,
        "platform": {"app_id": 3704, "app_source": "lv", "app_version": APP_VERSION, "os": "windows"},
        "relationships": [], "render_index_track_mode_on": False, "retouch_cover": None, "source": "default",
        "static_cover_image_path": "", "time_marks": None, "tracks": tracks, "update_time": 0,
        "version": DRAFT_VERSION,
        # our own, ignored by 剪映: the exact timeline rate for a lossless re-import
        "reelforge": {"fps": f"{fps.numerator}/{fps.denominator}",
                      "markers": [[m.frame, m.name, m.duration, m.note] for m in tl.markers],
                      "metadata": dict(tl.metadata)},
    }


def draft_meta(tl: Timeline, folder: Path, draft_id: str, media: MediaPlan | None = None) -> dict[str, Any]:
    """The ``draft_meta_info.json`` document: the draft's folder, its root and its media list."""
    plan = media or MediaPlan(anchor=folder.parent)
    now_us = int(time.time() * US)
    videos: list[dict[str, Any]] = []
    seen: set[str] = set()
    for track in tl.tracks:
        for c in track.clips:
            path = plan.path(c.media.path)
            if not path or path in seen:
                continue
            seen.add(path)
            videos.append({"create_time": now_us // US, "duration": frames_to_us(max(c.media.frames, 1), c.media.fps),
                           "extra_info": PurePosixPath(path).name, "file_Path": path,
                           "height": c.media.height, "id": _id(f"meta|{path}"),
                           "import_time": now_us // US, "import_time_ms": now_us, "item_source": 1, "md5": "",
                           "metetype": "video" if c.media.has_video else "music", "roughcut_time_range":
                           {"duration": -1, "start": -1}, "sub_time_range": {"duration": -1, "start": -1},
                           "type": 0, "width": c.media.width})
    return {
        "cloud_package_completed_time": "", "draft_cloud_capcut_purchase_info": "", "draft_cloud_last_action_download":
        False, "draft_cloud_materials": [], "draft_cloud_purchase_info": "", "draft_cloud_template_id": "",
        "draft_cloud_tutorial_info": "", "draft_cloud_videocut_purchase_info": "", "draft_cover": "",
        "draft_deeplink_url": "", "draft_enterprise_info": {"draft_enterprise_extra": "", "draft_enterprise_id": "",
                                                            "draft_enterprise_name": "", "enterprise_material": []},
        # as 剪映 writes them on Windows: the folder with "/", the root with "\\"
        "draft_fold_path": plan.folder(folder), "draft_id": draft_id, "draft_is_ai_packaging_used": False,
        "draft_is_ai_shorts": False, "draft_is_ai_translate": False, "draft_is_article_video_draft": False,
        "draft_is_from_deeplink": "false", "draft_is_invisible": False,
        "draft_materials": [{"type": 0, "value": videos}] + [{"type": t, "value": []} for t in (1, 2, 3, 6, 7, 8)],
        "draft_materials_copied_info": [], "draft_name": folder.name, "draft_new_version": "",
        "draft_removable_storage_device": "", "draft_root_path": plan.folder(folder.parent, native=True),
        "draft_segment_extra_info": [], "draft_type": "", "tm_draft_cloud_completed": "", "tm_draft_cloud_modified": 0,
        "tm_draft_create": now_us, "tm_draft_modified": now_us, "tm_draft_removed": 0,
        "tm_duration": frames_to_us(tl.duration, tl.fps),
    }


class JianyingExporter(TimelineExporter):
    """剪映专业版 5.x draft folder; copy (or export straight) into 剪映's drafts folder to open it."""

    name = "jianying"
    description = "剪映专业版 5.x draft folder"
    folder = True

    def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
        if dst.exists() and not dst.is_dir():
            raise InputError(f"{str(dst)!r} exists and is not a folder", hint="a 剪映 draft is a folder")
        dst.mkdir(parents=True, exist_ok=True)
        notes: list[str] = []
        content = draft_content(tl, notes, media)
        if media.root is not None:
            os_name = "windows" if media.root.windows else "mac"
            for key in ("platform", "last_modified_platform"):
                content[key]["os"] = os_name
        meta = draft_meta(tl, dst, content["id"], media)
        for name, data in (("draft_content.json", content), ("draft_meta_info.json", meta)):
            tmp = dst / f".{name}.tmp"
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(dst / name)
        return notes


def write_draft(tl: Timeline, folder: str | Path, *, target_root: str | None = None,
                package: str | None = None) -> tuple[Path, list[str]]:
    """Write a draft folder (see :func:`pipelines.timeline.export_timeline`)."""
    from pipelines.timeline import export_timeline

    return export_timeline(tl, folder, "jianying", target_root=target_root, package=package)


def read_draft(folder: str | Path) -> Timeline:
    """Read an unencrypted 剪映 5.x draft (ours or the app's) back into a timeline."""
    src = Path(folder)
    path = src / "draft_content.json" if src.is_dir() else src
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{str(path)!r} does not exist", hint="pass a 剪映 draft folder") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{str(path)!r} is not plain JSON: drafts saved by 剪映 6.x and later are encrypted",
                         hint="only 剪映专业版 5.x (unencrypted) drafts can be read") from e
    ours = data.get("reelforge") or {}
    fps = Fraction(ours["fps"]) if ours.get("fps") else Fraction(data.get("fps", 30.0)).limit_denominator(1001)
    mats: dict[str, MediaRef] = {}
    for kind in ("videos", "audios"):
        for m in data.get("materials", {}).get(kind, []):
            mfps = Fraction(m["reelforge_fps"]) if m.get("reelforge_fps") else fps
            frames = int(m.get("reelforge_frames") or us_to_frames(int(m.get("duration", 0)), mfps))
            mats[m["id"]] = MediaRef(path=m.get("path", ""), fps=mfps, frames=frames, width=int(m.get("width", 0) or 0),
                                     height=int(m.get("height", 0) or 0), has_video=kind == "videos",
                                     has_audio=bool(m.get("has_audio", True)) if kind == "videos" else True)
    texts = {m["id"]: json.loads(m["content"]).get("text", "") for m in data.get("materials", {}).get("texts", [])}
    tracks: list[Track] = []
    captions: list[Caption] = []
    for t in data.get("tracks", []):
        if t.get("type") == "text":
            for s in t.get("segments", []):
                tr = s["target_timerange"]
                captions.append(Caption(us_to_frames(tr["start"], fps), us_to_frames(tr["start"] + tr["duration"], fps),
                                        texts.get(s["material_id"], "")))
            continue
        if t.get("type") not in ("video", "audio"):
            continue
        clips = []
        for s in t.get("segments", []):
            media = mats[s["material_id"]]
            tr, sr = s["target_timerange"], s["source_timerange"]
            start = us_to_frames(tr["start"], fps)
            end = us_to_frames(tr["start"] + tr["duration"], fps)
            vol = float(s.get("volume", 1.0))
            import math

            gain = round(20 * math.log10(vol), 2) if vol > 0 and abs(vol - 1.0) > 1e-6 else 0.0
            clips.append(Clip(media=media, start=start, duration=end - start,
                              source_in=us_to_frames(sr["start"], media.fps), gain_db=gain))
        tracks.append(Track(kind=t["type"], name=t.get("name", "") or t["type"], clips=tuple(clips)))
    from core.timeline import Marker

    canvas = data.get("canvas_config", {})
    return Timeline(name=data.get("name", ""), fps=fps, width=int(canvas.get("width", 1920)),
                    height=int(canvas.get("height", 1080)), tracks=tuple(tracks), captions=tuple(captions),
                    markers=tuple(Marker(int(f), n, int(d), "RED", note) for f, n, d, note in ours.get("markers", [])),
                    metadata={str(k): str(v) for k, v in (ours.get("metadata") or {}).items()})
