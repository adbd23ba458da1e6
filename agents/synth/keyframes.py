"""Generated keyframes: a picture per shot from its visual prompt, with the characters carried in.

:class:`KeyframeEngine` holds what every image generator shares: the shot's prompt (the review's
edit, else the screenplay's visual prompt, else one built from the scene) with the characters'
appearance and the series style; a stable seed per shot (moved on by "regenerate"); the shot's
own settings from review; a cache keyed by everything that shapes the picture, so an edited shot
is the only one made again; a reference sheet per character (series-wide); consistency scores;
batches that stop at the caps. A subclass supplies the generator (:class:`KeyframeBackend`), the
usage records of a batch and, optionally, motion from an image-to-video model.

:class:`DiffusersEngine` is the local one: any diffusers pipeline from a folder or single file
(:class:`pipelines.diffusion.KeyframePipeline`), GPU or CPU, with the model card's licence on
every usage record and image-to-video (:class:`pipelines.motion.VideoPipeline`) when a video
model is configured. A remote provider subclasses :class:`KeyframeEngine` the same way.
"""

from __future__ import annotations

import json
import logging
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents.synth.job import TIME_ZH, EpisodeJob, ShotPlan, content_hash, file_hash
from agents.synth.pictures import Keyframe, MotionClip, PictureEngine, consistency_from_json
from agents.synth.quote import Quote, QuoteLine, check_caps
from agents.synth.schema import NARRATOR
from core.aigc import make_label
from core.errors import InputError, ReelForgeError
from core.files import atomic_path, atomic_write_text
from core.screenplay import Character, Shot
from core.usage import UsageRecord, seconds_since
from models.modelcard import ModelLicence, read_model_licence
from pipelines.diffusion import KeyframeRecord, KeyframeRequest, seed_for
from pipelines.label import save_labelled_png

log = logging.getLogger(__name__)

CONSISTENCY_MODES = ("auto", "prompt", "img2img", "ip-adapter", "off")


class KeyframeBackend(Protocol):
    """Makes images from keyframe requests: a local diffusers pipeline, or a provider's client."""

    @property
    def ip_adapter_loaded(self) -> bool: ...

    def load(self) -> Any: ...

    def generation_size(self, frame: tuple[int, int], fit: str = "auto",
                        size: tuple[int, int] | None = None) -> tuple[int, int]: ...

    def generate(self, requests: Sequence[KeyframeRequest]) -> list[tuple[np.ndarray, KeyframeRecord]]: ...


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class KeyframeEngine(PictureEngine):
    """Keyframes, character sheets and consistency scores from an image generator."""

    # -- what a generator supplies -----------------------------------------------------------
    @abstractmethod
    def backend(self, job: EpisodeJob) -> KeyframeBackend:
        """The generator for this job (kept between episodes where that saves loading it again)."""

    @abstractmethod
    def account(self, job: EpisodeJob, batch: list[tuple[np.ndarray, KeyframeRecord]], seconds: Decimal) -> None:
        """Charge one generated batch to ``job.spent`` and append its usage records to ``job.usage``."""

    def animate(self, job: EpisodeJob, keyframes: dict[str, Keyframe]) -> None:
        """Add motion clips to the keyframes (image-to-video); by default the compositor moves the camera."""

    # -- one shot's request ------------------------------------------------------------------
    def prompt(self, job: EpisodeJob, shot: Shot) -> str:
        from pipelines.consistency import character_prompt

        sc = job.settings.synth
        base = job.review_of(shot.id).prompt or shot.visual_prompt
        if not base:
            scene = job.scene_of(shot)
            speakers = [ln.speaker for ln in shot.lines if ln.speaker and ln.speaker != NARRATOR]
            base = "，".join(x for x in (scene.place, TIME_ZH.get(scene.time_of_day, ""), scene.summary[:60],
                                        *speakers[:2]) if x)
        chars: list[tuple[str, str]] = []
        if sc.consistency != "off":
            for name in shot.characters:
                ch = job.inp.series.character(name)
                if ch is not None:
                    chars.append((ch.name, ch.appearance))
        prompt = character_prompt(base, chars)
        return f"{prompt}, {sc.style}" if sc.style else prompt

    def seed(self, job: EpisodeJob, shot: Shot) -> int:
        entry = job.review_of(shot.id)
        if entry.settings.seed is not None:
            return entry.settings.seed + entry.seed_offset
        return (seed_for(job.title, shot.id) + entry.seed_offset) % (2**31)

    def options(self, job: EpisodeJob, shot: Shot) -> dict[str, Any]:
        """Generation settings for one shot: the run's, overridden by the shot's review entry."""
        own, s = job.review_of(shot.id).settings, job.settings
        return {"steps": own.steps if own.steps is not None else s.steps,
                "guidance": own.guidance if own.guidance is not None else s.guidance,
                "scheduler": (own.scheduler if own.scheduler is not None else s.synth.scheduler) or None,
                "negative_prompt": own.negative_prompt if own.negative_prompt is not None else s.synth.negative_prompt}

    def request_key(self, job: EpisodeJob, shot: Shot) -> str:
        s = job.settings
        return content_hash({"model": s.image_model, "prompt": self.prompt(job, shot), "seed": self.seed(job, shot),
                             "opts": self.options(job, shot), "size": s.gen_size, "fit": s.synth.fit,
                             "consistency": s.synth.consistency, "ip": s.synth.ip_adapter, "frame": list(job.frame),
                             "chars": sorted(shot.characters)})

    def request(self, job: EpisodeJob, shot: Shot) -> KeyframeRequest:
        return KeyframeRequest(prompt=self.prompt(job, shot), seed=self.seed(job, shot), tag=shot.id,
                               **self.options(job, shot))

    # -- the cache ---------------------------------------------------------------------------
    def files(self, job: EpisodeJob, shot_id: str) -> tuple[Path, Path]:
        """The keyframe's PNG and its record, inside the episode's folder."""
        return job.path("keyframes", f"{shot_id}.png"), job.path("keyframes", f"{shot_id}.json")

    def cached(self, job: EpisodeJob, shot: Shot, rkey: str) -> Keyframe | None:
        png, rec_path = self.files(job, shot.id)
        if not (png.exists() and rec_path.exists()):
            return None
        try:
            stored = json.loads(rec_path.read_text(encoding="utf-8"))
            if stored.get("request_key") != rkey:
                return None
            return Keyframe(png, rec_path, str(stored["record"]["prompt"]), int(stored["record"]["seed"]),
                            file_hash(png), consistency_from_json(stored.get("consistency")))
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record: made again

    def sheet_characters(self, job: EpisodeJob) -> list[Character]:
        present = {c for sc in job.episode.scenes for sh in sc.shots for c in sh.characters}
        return [ch for ch in job.inp.series.characters if ch.name in present and ch.appearance]

    # -- the quote ---------------------------------------------------------------------------
    def quote(self, job: EpisodeJob) -> Quote:
        q = super().quote(job)
        shots = [sh for sc in job.episode.scenes for sh in sc.shots]
        cached = sum(1 for sh in shots if self.cached(job, sh, self.request_key(job, sh)) is not None)
        sheets = 0
        if job.settings.synth.consistency not in ("off", "prompt"):
            sheets = sum(1 for ch in self.sheet_characters(job) if not job.sheet_path(ch.name).exists())
        q.images = len(shots) - cached + sheets
        q.keyframes_cached = cached
        q.lines.append(QuoteLine("keyframes + sheets", Path(job.settings.image_model).name, "image", Decimal(q.images)))
        return q

    def stored(self, job: EpisodeJob, shot: Shot) -> Keyframe | None:
        """The shot's finished keyframe with its motion clip, read from the cache (no model is loaded);
        None when its keyframe task has not made it."""
        kf = self.cached(job, shot, self.request_key(job, shot))
        if kf is None:
            return None
        s = job.settings
        if s.video_model:
            mp4, meta = job.path("keyframes", f"{shot.id}.motion.mp4"), job.path("keyframes", f"{shot.id}.motion.json")
            stored = _read_json(meta) if mp4.exists() else {}
            if stored.get("key") == self.motion_key(job, kf):
                kf.motion = MotionClip(mp4, Fraction(s.synth.video_fps), str(stored["key"]),
                                       str(stored["record"]["pipeline"]))
        return kf

    def motion_key(self, job: EpisodeJob, kf: Keyframe) -> str:
        s = job.settings
        return content_hash({"kf": kf.digest, "model": s.video_model, "frames": s.synth.video_frames,
                             "fps": s.synth.video_fps, "steps": s.steps})

    # -- making them -------------------------------------------------------------------------
    def pictures(self, job: EpisodeJob) -> dict[str, Keyframe]:
        out = self.stills(job)
        self.animate(job, out)
        return out

    def stills(self, job: EpisodeJob) -> dict[str, Keyframe]:
        """The keyframes of ``job.plans`` (made or reused) with their consistency scores, without motion."""
        mode = job.settings.synth.consistency
        if mode not in CONSISTENCY_MODES:
            raise InputError(f"[synth] consistency {mode!r} is unknown", hint=f"use one of {', '.join(CONSISTENCY_MODES)}")
        job.path("keyframes").mkdir(parents=True, exist_ok=True)
        out: dict[str, Keyframe] = {}
        todo: list[tuple[ShotPlan, str]] = []
        for p in job.plans:
            rkey = self.request_key(job, p.shot)
            found = self.cached(job, p.shot, rkey)
            if found is not None:
                out[p.shot.id] = found
            else:
                todo.append((p, rkey))
        sheets = self.sheets(job) if mode != "off" else {}
        if todo:
            out.update(self.keyframes(job, todo, sheets))
        if sheets:
            self.score(job, out, sheets)
        return out

    def sheets(self, job: EpisodeJob) -> dict[str, Path]:
        """A reference sheet per character of the episode (made once for the series)."""
        sheets: dict[str, Path] = {}
        missing: list[tuple[Character, Path]] = []
        job.sheet_dir.mkdir(parents=True, exist_ok=True)
        for ch in self.sheet_characters(job):
            path = job.sheet_path(ch.name)
            if path.exists():
                sheets[ch.name] = path
            elif job.settings.synth.consistency != "prompt":
                missing.append((ch, path))
        if not missing:
            return sheets
        from pipelines.consistency import sheet_prompt

        s = job.settings
        reqs = [KeyframeRequest(prompt=sheet_prompt(ch.name, ch.appearance, s.synth.style),
                                seed=seed_for(job.title, "sheet", ch.name), negative_prompt=s.synth.negative_prompt,
                                steps=s.steps, guidance=s.guidance, scheduler=s.synth.scheduler or None,
                                tag=f"sheet:{ch.name}") for ch, _ in missing]
        job.ctx.step(0.2, f"角色设定图 · {len(reqs)} character sheets")
        for (ch, path), (img, rec) in zip(missing, self.generate(job, reqs), strict=True):
            atomic_write_text(path.with_suffix(".json"), json.dumps(rec.to_json(), ensure_ascii=False, indent=2))
            with atomic_path(path) as tmp:  # the PNG last: its presence says the sheet is made
                save_labelled_png(img, tmp, make_label(job.inp.producer, f"sheet|{ch.name}|{rec.seed}"))
            sheets[ch.name] = path
        return sheets

    def keyframes(self, job: EpisodeJob, todo: list[tuple[ShotPlan, str]], sheets: dict[str, Path]) -> dict[str, Keyframe]:
        s, mode = job.settings, job.settings.synth.consistency
        backend = self.backend(job)
        backend.load()
        size = backend.generation_size(job.frame, s.synth.fit, s.gen_size)
        use_ip = backend.ip_adapter_loaded and mode in ("auto", "ip-adapter")
        if mode == "ip-adapter" and not use_ip:
            raise InputError("consistency = ip-adapter but no IP-Adapter is configured",
                             hint="set [synth] ip_adapter to a local IP-Adapter folder, or consistency = auto")
        reqs = []
        for p, _ in todo:
            ref = next((sheets[c] for c in p.shot.characters if c in sheets), None)
            kw: dict[str, Any] = {"width": size[0], "height": size[1]}
            if ref is not None and use_ip:
                kw["ip_adapter_image"] = str(ref)
            elif ref is not None and mode == "img2img":
                kw["init_image"] = str(ref)
            reqs.append(replace(self.request(job, p.shot), **kw))
        job.ctx.step(0.25, f"关键帧 · {len(reqs)} keyframes")
        out: dict[str, Keyframe] = {}
        for (p, rkey), (img, rec) in zip(todo, self.generate(job, reqs), strict=True):
            png, rec_path = self.files(job, p.shot.id)
            label = make_label(job.inp.producer, f"{job.title}|ep{job.episode.number}|{p.shot.id}|{rec.seed}")
            with atomic_path(png) as tmp:
                save_labelled_png(img, tmp, label)
            atomic_write_text(rec_path, json.dumps({"request_key": rkey, "record": rec.to_json()}, ensure_ascii=False,
                                                   indent=2))
            out[p.shot.id] = Keyframe(png, rec_path, rec.prompt, rec.seed, file_hash(png))
        return out

    def generate(self, job: EpisodeJob, reqs: list[KeyframeRequest]) -> list[tuple[np.ndarray, KeyframeRecord]]:
        """Generate in batches, checking the caps before each batch and accounting for it after."""
        backend = self.backend(job)
        results: list[tuple[np.ndarray, KeyframeRecord]] = []
        bs = max(1, job.settings.synth.batch_size)
        for i in range(0, len(reqs), bs):
            job.ctx.check_cancelled()
            check_caps(job.settings.caps, job.spent, f"{len(reqs) - i} images were")
            t0 = time.perf_counter()
            batch = backend.generate(reqs[i:i + bs])
            self.account(job, batch, seconds_since(t0, time.perf_counter()))
            results.extend(batch)
        return results

    def score(self, job: EpisodeJob, keyframes: dict[str, Keyframe], sheets: dict[str, Path]) -> None:
        """Consistency of each keyframe with its characters' sheets (cheap; recomputed when missing)."""
        from pipelines.consistency import get_encoder, score_shot

        path = job.settings.synth.image_encoder or None
        encoder = get_encoder(path, job.settings.device)
        if path:
            lic = read_model_licence(path)
            if not lic.known:
                job.ctx.warn(f"image encoder {path}: {lic.licence}")
            job.usage.append(UsageRecord(stage="synth", engine="consistency", unit="use", quantity=Decimal(1),
                                         model=Path(path).name, device=job.settings.device, licence=lic.licence,
                                         detail={"episode": job.episode.number, "licence_source": lic.source}))
        sheet_imgs = {n: _read_image(p) for n, p in sheets.items()}
        for p in job.plans:
            kf = keyframes.get(p.shot.id)
            chars = {c: sheet_imgs[c] for c in p.shot.characters if c in sheet_imgs}
            if kf is None or not chars:
                continue
            found = score_shot(encoder, _read_image(kf.png), chars)
            if found is not None:
                kf.store_consistency(found)


class DiffusersEngine(KeyframeEngine):
    """Keyframes from a local diffusers pipeline; motion from a local image-to-video pipeline."""

    name = "diffusers"
    description = ("a keyframe per shot from a local diffusers model (SD, SDXL, FLUX...), character sheets, "
                   "consistency scores, image-to-video; GPU or CPU")

    def __init__(self) -> None:
        self._pipeline: tuple[tuple[Any, ...], Any] | None = None  # KeyframePipeline, kept between episodes
        self._video: tuple[tuple[str, str], Any] | None = None  # VideoPipeline
        self._licences: dict[str, ModelLicence] = {}
        self._calibration: Any = None

    def device(self, job: EpisodeJob) -> str:
        try:
            from core.device import resolve_device

            return str(resolve_device(job.settings.device))
        except ReelForgeError:
            return job.settings.device

    def licence(self, job: EpisodeJob, model: str) -> ModelLicence:
        """The model card's licence (read once per model; a model without one is reported)."""
        if model not in self._licences:
            self._licences[model] = read_model_licence(model)
        lic = self._licences[model]
        if not lic.known:
            job.ctx.warn(f"model {Path(model).name}: {lic.licence}; add its model card so the records name it")
        return lic

    def backend(self, job: EpisodeJob) -> KeyframeBackend:
        from pipelines.diffusion import KeyframePipeline, PipelineOptions

        s = job.settings
        want = (s.image_model, s.device, s.synth.ip_adapter, s.synth.batch_size)
        if self._pipeline is None or self._pipeline[0] != want:
            opts = PipelineOptions(device=s.device, batch_size=max(1, s.synth.batch_size),
                                   ip_adapter=s.synth.ip_adapter if s.synth.consistency in ("auto", "ip-adapter") else "")
            self._pipeline = (want, KeyframePipeline(s.image_model, opts))
        pipe: KeyframeBackend = self._pipeline[1]
        return pipe

    def quote(self, job: EpisodeJob) -> Quote:
        from pipelines.diffusion import Calibration, native_size_from_folder

        q = super().quote(job)
        s, device = job.settings, q.device
        steps = s.steps or 30
        native = native_size_from_folder(s.image_model) if Path(s.image_model).is_dir() else None
        w, h = s.gen_size or native or (1024, 1024)
        if s.gen_size is None and native is None:
            q.notes.append("the model's native size is unknown before loading: 1024x1024 assumed")
        per = Calibration.load(job.calibration_path).get(Path(s.image_model).name, device)
        if per is None:
            per = 0.15 if device.startswith("cuda") else 20.0
            q.notes.append("GPU seconds are a rough default (no run measured yet on this device); "
                           "the first run calibrates them")
        q.gpu_seconds = Decimal(str(round(per * steps * (w * h / 1e6) * q.images, 1)))
        if s.video_model:
            q.video_clips = sum(len(sc.shots) for sc in job.episode.scenes)
            per_clip = 60.0 if device.startswith("cuda") else 600.0
            q.gpu_seconds += Decimal(str(per_clip * q.video_clips))
            q.notes.append("video seconds use a rough default per clip")
        unit = "gpu_second" if device.startswith("cuda") else "cpu_second"
        q.lines.append(QuoteLine("generation time", Path(s.image_model).name, unit, q.gpu_seconds))
        return q

    def stills(self, job: EpisodeJob) -> dict[str, Keyframe]:
        from pipelines.diffusion import Calibration

        self._calibration = Calibration.load(job.calibration_path)
        try:
            return super().stills(job)
        finally:
            self._calibration.save(job.calibration_path)

    def account(self, job: EpisodeJob, batch: list[tuple[np.ndarray, KeyframeRecord]], seconds: Decimal) -> None:
        rec = batch[0][1]
        model = Path(job.settings.image_model).name
        unit = "gpu_second" if rec.device.startswith("cuda") else "cpu_second"
        job.spent.gpu_seconds += seconds
        job.spent.charge(job.prices, model, unit, seconds)
        job.spent.charge(job.prices, model, "image", Decimal(len(batch)))
        if self._calibration is not None:
            for _, r in batch:
                self._calibration.update(model, r.device, r.seconds, r.steps, r.width * r.height)
        lic = self.licence(job, job.settings.image_model)
        ep = job.episode.number
        job.usage.append(UsageRecord(stage="synth", engine="diffusers", unit=unit, quantity=seconds, seconds=seconds,
                                     model=model, device=rec.device, licence=lic.licence,
                                     detail={"episode": ep, "images": len(batch), "steps": rec.steps,
                                             "size": [rec.width, rec.height], "pipeline": rec.pipeline,
                                             "seeds": [r.seed for _, r in batch], "tags": [r.tag for _, r in batch],
                                             "licence_source": lic.source}))
        job.usage.append(UsageRecord(stage="synth", engine="diffusers", unit="image", quantity=Decimal(len(batch)),
                                     model=model, device=rec.device, licence=lic.licence, detail={"episode": ep}))

    # -- image to video ----------------------------------------------------------------------
    def animate(self, job: EpisodeJob, keyframes: dict[str, Keyframe]) -> None:
        s = job.settings
        if not s.video_model:
            return
        from pipelines.motion import VideoPipeline

        if self._video is None or self._video[0] != (s.video_model, s.device):
            self._video = ((s.video_model, s.device), VideoPipeline(s.video_model, device=s.device))
        vp = self._video[1]
        fps = Fraction(s.synth.video_fps)
        for n, p in enumerate(job.plans):
            kf = keyframes.get(p.shot.id)
            if kf is None:
                continue
            job.ctx.step(0.45 + 0.15 * n / len(job.plans), f"图生视频 {n + 1}/{len(job.plans)} · image to video")
            mp4, meta = job.path("keyframes", f"{p.shot.id}.motion.mp4"), job.path("keyframes", f"{p.shot.id}.motion.json")
            key = self.motion_key(job, kf)
            stored = _read_json(meta) if mp4.exists() else {}
            if stored.get("key") == key:
                kf.motion = MotionClip(mp4, fps, key, str(stored["record"]["pipeline"]))
                continue
            check_caps(s.caps, job.spent, f"image-to-video of {p.shot.id} was")
            frames, rec = vp.generate(_read_image(kf.png), seed=seed_for(job.title, "video", p.shot.id),
                                      frames=s.synth.video_frames, fps=s.synth.video_fps, steps=s.steps)
            _write_clip(mp4, frames, fps)
            atomic_write_text(meta, json.dumps({"key": key, "record": asdict(rec)}, ensure_ascii=False, indent=2))
            secs = Decimal(str(rec.seconds))
            job.spent.gpu_seconds += secs
            unit = "gpu_second" if rec.device.startswith("cuda") else "cpu_second"
            job.spent.charge(job.prices, Path(s.video_model).name, unit, secs)
            lic = self.licence(job, s.video_model)
            job.usage.append(UsageRecord(stage="synth", engine="diffusers-video", unit=unit, quantity=secs, seconds=secs,
                                         model=Path(s.video_model).name, device=rec.device, licence=lic.licence,
                                         detail={"episode": job.episode.number, "shot": p.shot.id, "frames": rec.frames,
                                                 "seed": rec.seed, "pipeline": rec.pipeline,
                                                 "licence_source": lic.source}))
            kf.motion = MotionClip(mp4, fps, key, rec.pipeline)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_clip(path: Path, frames: list[np.ndarray], fps: Fraction) -> None:
    """A generated clip, losslessly enough (CRF 12) to be retimed and re-encoded into the shot."""
    from core.media import VideoWriter

    h, w = frames[0].shape[:2]
    w2, h2 = w - w % 2, h - h % 2
    with VideoWriter(path, w2, h2, fps, crf=12, preset="veryfast") as writer:
        for f in frames:
            writer.write(np.ascontiguousarray(f[:h2, :w2]))
