"""The compositor: each planned shot to a clip (picture + its exact samples of the episode's sound).

The picture is the shot's keyframe (fitted to the frame) or an animatic plate (the user's own
background matched to the place's name, else a generated plate). On it go the cards (speaker,
subtitle, scene header on animatic shots) and the visible "AI生成" label; the camera moves over
it (two-layer parallax for animatic shots), or an image-to-video clip plays instead. The clip
carries the implicit label in its container; the shot's still and WAV carry it too.

Each clip is cached under ``synth/epNN/shots/`` with a key of everything that shaped it; when
only the sound changed (an edited line elsewhere moved the episode's loudness or music), the
clip's audio is swapped and its video packets kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from agents.synth.job import EpisodeJob, ShotPlan, content_hash, scene_header
from agents.synth.pictures import Keyframe, MotionClip
from agents.synth.schema import NARRATOR, RENDER_VERSION, MotionKind, ShotRender, motion_name
from agents.synth.sound import EpisodeSound
from core.aigc import AIGC_KEY, label_metadata, make_label, read_label
from core.errors import InputError
from core.files import atomic_path, atomic_write_text
from core.media import VideoWriter, concat, probe, write_wav
from core.paths import safe_join
from core.screenplay import Scene
from pipelines.cards import CardSpec, composite, plate, render_layers
from pipelines.label import save_labelled_png, write_wav_label
from pipelines.motion import CameraMove, Overlay, Sprite, prepare_plate

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def background_file(job: EpisodeJob, scene: Scene) -> Path | None:
    """The user's own image for a scene's place ([synth] backgrounds), matched by file name."""
    folder = job.settings.synth.backgrounds
    if not folder or not scene.place:
        return None
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"[synth] backgrounds {folder!r} is not a folder", hint="point it at a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    exact = [p for p in files if p.stem == scene.place]
    near = [p for p in files if scene.place in p.stem or (p.stem and p.stem in scene.place)]
    found = exact or near
    return found[0] if found else None


def picture_key(job: EpisodeJob, voice_engine: str, plan: ShotPlan, kf: Keyframe | None) -> str:
    """Hash of everything that shapes the shot's picture (the sound is keyed separately)."""
    inp = job.inp
    payload = {
        "v": RENDER_VERSION, "shot": plan.shot.model_dump(mode="json"),
        "header": scene_header(job.episode, plan.scene_index, plan.scene),
        "place": plan.scene.place, "tod": plan.scene.time_of_day, "size": [inp.width, inp.height],
        "fps": str(inp.fps), "crf": inp.crf, "preset": inp.preset, "rate": inp.audio_rate, "tts": voice_engine,
        "timed": [t.model_dump() for t in plan.timed], "frames": plan.frames,
        "label": [inp.label.text, inp.label.position, inp.label.opacity, inp.label.enabled], "producer": inp.producer,
        "engine": job.settings.engine, "keyframe": kf.digest if kf else None,
        "motion": kf.motion.key if kf and kf.motion else None,
        "fit": job.settings.synth.fit, "background": str(background_file(job, plan.scene) or ""),
    }
    return content_hash(payload)


def cached_render(job: EpisodeJob, meta_path: Path, key: str, field: str = "key") -> ShotRender | None:
    """The shot's stored render when its ``field`` equals ``key`` and its files are all there."""
    if not meta_path.exists():
        return None
    try:
        render = ShotRender.model_validate_json(meta_path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if not key or getattr(render, field) != key:
        return None
    try:
        files = [safe_join(job.out_dir, p) for p in (render.clip, render.audio, render.keyframe)]
    except InputError:
        return None  # a record pointing outside the episode's folder is not ours: render again
    return render if all(p.exists() for p in files) else None


def render_shots(job: EpisodeJob, voice_engine: str, sound: EpisodeSound,
                 keyframes: dict[str, Keyframe]) -> tuple[list[ShotRender], int]:
    """Every planned shot's clip, made or reused. Returns the renders and how many were reused."""
    renders: list[ShotRender] = []
    reused = 0
    plans = job.plans
    for n, plan in enumerate(plans):
        job.ctx.step(0.6 + 0.4 * n / len(plans), f"合成镜头 {n + 1}/{len(plans)} · shot {plan.shot.id}")
        render, how = shot_clip(job, voice_engine, sound, plan, keyframes.get(plan.shot.id))
        renders.append(render)
        reused += how != "rendered"
    return renders, reused


def shot_clip(job: EpisodeJob, voice_engine: str, sound: EpisodeSound, plan: ShotPlan,
              kf: Keyframe | None) -> tuple[ShotRender, str]:
    """One planned shot's clip, made or reused (a shot task runs this alone).

    Returns the render and how it came: ``cached`` (nothing done), ``resound`` (only its sound was
    swapped) or ``rendered``."""
    job.path("shots").mkdir(parents=True, exist_ok=True)
    audio = sound.for_shot(job, plan)
    pkey = picture_key(job, voice_engine, plan, kf)
    key = content_hash({"picture": pkey, "audio": hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()})
    meta_path = job.path("shots", f"{plan.shot.id}.json")
    status = job.review_of(plan.shot.id).status
    cached = cached_render(job, meta_path, key)
    if cached is not None:
        cached.review = status
        return cached, "cached"
    same_picture = cached_render(job, meta_path, pkey, field="picture_key")
    if same_picture is not None:
        render = resound(job, same_picture, audio, key)
    else:
        render = render_shot(job, plan, key, audio, kf)
        render.picture_key = pkey
    render.review = status
    # the record last, whole or not at all: it is what says the clip, sound and still are complete
    atomic_write_text(meta_path, json.dumps(render.model_dump(mode="json"), ensure_ascii=False, indent=2))
    return render, "resound" if same_picture is not None else "rendered"


def resound(job: EpisodeJob, render: ShotRender, audio: np.ndarray, key: str) -> ShotRender:
    """Only the sound changed: rewrite the WAV and swap the clip's audio, keeping its video packets."""
    clip, wav = safe_join(job.out_dir, render.clip), safe_join(job.out_dir, render.audio)
    meta = {k: v for k, v in probe(clip).metadata.items() if k in {AIGC_KEY, "comment", "title"}}
    label = read_label(meta)
    with atomic_path(wav) as tmp_wav:
        write_wav(tmp_wav, audio, job.rate)
        if label is not None:
            write_wav_label(tmp_wav, label)  # the voice file carries the implicit label too
    with atomic_path(clip) as tmp:
        concat([clip], tmp, audio_from=[wav], audio_rate=job.rate, metadata=meta)
    return render.model_copy(update={"key": key})


def render_shot(job: EpisodeJob, plan: ShotPlan, key: str, audio: np.ndarray, kf: Keyframe | None) -> ShotRender:
    from core.timeline import EPISODE_FADE, SCENE_DISSOLVE, cut_keyframes
    from pipelines.diffusion import fit_to_frame

    inp, ep, fit = job.inp, job.episode, job.settings.synth.fit
    shot, scene = plan.shot, plan.scene
    fps, rate, frame = job.fps, job.rate, job.frame
    notes = list(plan.notes)
    label = make_label(inp.producer, f"{job.title}|ep{ep.number}|{shot.id}|{key}")
    clip, wav, png = (job.path("shots", f"{shot.id}{ext}") for ext in (".mp4", ".wav", ".png"))
    # the plate
    if kf is not None:
        background, fit_used = fit_to_frame(_read_rgb(kf.png), frame, fit)
        if fit_used.startswith("outpaint"):
            notes.append(f"shot {shot.id}: keyframe extended to the frame's aspect by a classical fill ({fit_used})")
    else:
        bg_file = background_file(job, scene)
        if bg_file is not None:
            background, _ = fit_to_frame(_read_rgb(bg_file), frame, "crop")
        else:
            background = plate(inp.width, inp.height, scene.place, scene.time_of_day)
    camera = str(shot.camera or "static")
    move = CameraMove.preset(camera, seed=int(key[:8], 16))
    motion = kf.motion if kf is not None else None
    # one card spec per line (or one for a silent shot); generated keyframes carry no header or character card
    header = scene_header(ep, plan.scene_index, scene)
    specs: list[tuple[int, CardSpec]] = []
    if not plan.timed:
        specs.append((0, _card(job, header, scene, kf is None, "", "", "narration")))
    for i, tl in enumerate(plan.timed):
        specs.append((0 if i == 0 else tl.start,
                      _card(job, header, scene, kf is None, "" if tl.speaker == NARRATOR else tl.speaker, tl.text,
                            tl.kind)))
    layers = [(first, render_layers(spec, background)) for first, spec in specs]
    bounds = [c[0] for c in layers[1:]] + [plan.frames]
    static = move.is_static and motion is None
    motion_kind: MotionKind = "static"
    motion_detail = ""
    # keyframes where the rough cut's transitions will end, so its render copies all but those
    first_ep = plan.scene_index == 1 and plan.first_in_scene
    last_ep = plan.scene_index == len(ep.scenes) and plan.last_in_scene
    head = EPISODE_FADE if first_ep else SCENE_DISSOLVE if plan.first_in_scene else 0
    tail = EPISODE_FADE if last_ep else SCENE_DISSOLVE if plan.last_in_scene else 0
    with VideoWriter(clip, inp.width, inp.height, fps, crf=inp.crf, preset=inp.preset, audio_rate=rate,
                     metadata=label_metadata(label),
                     keyframes=cut_keyframes(plan.frames, head=head, tail=tail)) as writer:
        writer.write_audio(audio)
        if static:
            for (first, lay), stop in zip(layers, bounds, strict=True):
                job.ctx.check_cancelled()
                prepared = writer.prepare(composite(lay))
                for _ in range(first, stop):
                    writer.write_frame(prepared)
        else:
            source = motion_frames(job, motion, plan.frames) if motion is not None else None
            plate_img = None
            if source is None:
                plate_img = prepare_plate(background, frame, move, channels=4)
                motion_kind, motion_detail = "camera", camera
            else:
                motion_kind, motion_detail = "i2v", motion.pipeline if motion else ""
            overlays = [(first, Overlay.from_rgba(lay.overlay), lay) for first, lay in layers]
            for (first, overlay, lay), stop in zip(overlays, bounds, strict=True):
                job.ctx.check_cancelled()
                sprites = (Sprite(lay.sprite, *lay.sprite_xy),) if lay.sprite is not None else ()
                if source is not None:
                    frames_iter: Iterator[np.ndarray] = (np.ascontiguousarray(source[i]) for i in range(first, stop))
                else:
                    assert plate_img is not None
                    # the move spans the whole shot: render frames first..stop of it
                    frames_iter = _slice_move(plate_img, frame, move, plan.frames, first, stop, fps, sprites)
                for img in frames_iter:
                    overlay.apply(img)
                    # through the writer's own RGB path, so moving and still shots share its colour conversion
                    writer.write(_rgb(img))
    with atomic_path(wav) as tmp_wav:
        write_wav(tmp_wav, audio, rate)
        write_wav_label(tmp_wav, label)  # the voice file carries the implicit label too
    still = composite(layers[0][1]) if kf is None else _read_rgb(kf.png)
    with atomic_path(png) as tmp_png:
        save_labelled_png(still, tmp_png, label)
    rel = job.out_dir
    return ShotRender(id=shot.id, scene_id=scene.id, clip=clip.relative_to(rel).as_posix(),
                      audio=wav.relative_to(rel).as_posix(), keyframe=png.relative_to(rel).as_posix(),
                      frames=plan.frames, lines=plan.timed, key=key, notes=notes,
                      picture=job.settings.engine if kf is not None else "animatic",
                      motion=motion_name(motion_kind, motion_detail),
                      prompt=kf.prompt if kf else "", seed=kf.seed if kf else None,
                      keyframe_record=kf.record.relative_to(rel).as_posix() if kf else "",
                      consistency=kf.consistency.score if kf and kf.consistency else None,
                      consistency_method=kf.consistency.method if kf and kf.consistency else "")


def _card(job: EpisodeJob, header: str, scene: Scene, animatic: bool, speaker: str, subtitle: str,
          kind: str) -> CardSpec:
    inp = job.inp
    return CardSpec(width=inp.width, height=inp.height, header=header, place=scene.place,
                    time_of_day=scene.time_of_day, label=inp.label, show_header=animatic, show_character=animatic,
                    speaker=speaker, subtitle=subtitle, kind=kind)


def motion_frames(job: EpisodeJob, motion: MotionClip, n: int) -> list[np.ndarray]:
    """The image-to-video clip fitted to the frame and retimed onto the shot's ``n`` frames."""
    from core.media import iter_frames
    from pipelines.diffusion import fit_to_frame
    from pipelines.motion import retime

    src = [fit_to_frame(f.image, job.frame, job.settings.synth.fit)[0] for f in iter_frames(motion.path)]
    return retime(src, motion.fps, job.fps, n)


def render_cover(job: EpisodeJob, keyframes: dict[str, Keyframe]) -> Path:
    """The episode's cover: the first keyframe (or the first plate) with the title and the label."""
    from pipelines.cards import render_cover as draw_cover
    from pipelines.diffusion import fit_to_frame

    first = next((p for p in job.plans if p.shot.id in keyframes), None)
    if first is not None:
        img, _ = fit_to_frame(_read_rgb(keyframes[first.shot.id].png), job.frame, "auto")
    else:
        p = job.plans[0]
        img = plate(job.inp.width, job.inp.height, p.scene.place, p.scene.time_of_day)
    cover = draw_cover(img, job.title, f"第{job.episode.number}集 {job.episode.title}".strip(), job.inp.label)
    label = make_label(job.inp.producer, f"{job.title}|ep{job.episode.number}|cover")
    with atomic_path(job.out_dir / "cover.png") as tmp:
        save_labelled_png(cover, tmp, label)
    return job.out_dir / "cover.png"


def _rgb(img: np.ndarray) -> np.ndarray:
    """RGB pixels from an RGB or RGBX frame."""
    if img.shape[2] == 3:
        return img
    import cv2

    return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)


def _slice_move(plate_img: np.ndarray, frame: tuple[int, int], move: CameraMove, n: int, first: int, stop: int,
                fps: Fraction, sprites: tuple[Sprite, ...]) -> Iterator[np.ndarray]:
    """Frames ``first..stop`` of a move that spans ``n`` frames (the move does not restart per line)."""
    from pipelines.motion import _blend_sprite, _cv2

    cv2 = _cv2()
    fw, fh = frame
    ph, pw = plate_img.shape[:2]
    out = np.empty((fh, fw, plate_img.shape[2]), np.uint8)
    for i in range(first, stop):
        m = move.matrix(i, n, (pw, ph), frame, fps)
        cv2.warpAffine(plate_img, m, (fw, fh), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        for sp in sprites:
            _blend_sprite(out, sp, move, i, n, frame, fps)
        yield out
