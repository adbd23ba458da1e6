"""Generation providers in the synth agent: keyframes, character sheets, image-to-video and voices
from cloud model APIs or a local ComfyUI (``--image/--video/--voice PROVIDER:MODEL``).

The walk of an episode with providers:

1. a reference sheet per character of the episode (one image each, series-wide in
   ``characters/``), made first; headless runs approve them (``characters/sheets.json``
   records who approved what; with ``[review] required`` they stay pending for a person);
2. a keyframe per shot, the sheets of the shot's characters passed as reference images where
   the provider's model accepts references; each keyframe record lists the references used;
3. with a video model, the keyframe goes to image-to-video, so the clip keeps the approved look;
   keyframe -> video is one chain per shot and chains run concurrently (see
   :class:`pipelines.providers.runner.TaskRunner`);
4. a failed task is sent again with a new seed (``[providers] retries``, default 2); after that
   the shot falls back to the animatic plate (or to a camera move on its keyframe) with a note.

Every call goes through the project's task journal (``PROJECT/providers/``): a killed run is
started again and pays for nothing twice. Usage records (provider, model, units as the
provider reported them, the unit price used, the task id) are written the moment each task
finishes; ``reelforge ledger import-usage`` prices them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from agents.synth.job import EpisodeJob, ShotPlan, content_hash, file_hash
from agents.synth.keyframes import KeyframeEngine, _read_image
from agents.synth.pictures import Keyframe, MotionClip
from agents.synth.quote import Quote, QuoteLine
from core.aigc import make_label
from core.errors import FieldError, InputError
from core.screenplay import Character, Series
from core.usage import UsageRecord
from pipelines.label import save_labelled_png
from pipelines.providers import GenRequest, Kind, create, parse_spec
from pipelines.providers.pricing import Budget
from pipelines.providers.runner import Job, JobResult, Step, TaskRunner, store_sink
from pipelines.tts import Speech, TTSError, VoiceSpec

log = logging.getLogger(__name__)

ESPEAK_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z]+)?(\+[a-z]+\d*)?$")
DEFAULT_RETRIES = 2


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """The ``PROVIDER:MODEL`` picks of a run (None: not from a provider)."""

    image: tuple[str, str] | None = None
    video: tuple[str, str] | None = None
    voice: tuple[str, str] | None = None

    @classmethod
    def parse(cls, image: str | None = None, video: str | None = None, voice: str | None = None) -> ProviderChoice:
        def one(spec: str | None, kind: Kind, flag: str) -> tuple[str, str] | None:
            if not spec:
                return None
            try:
                return parse_spec(spec, kind)
            except InputError as e:
                raise FieldError(flag, spec, e.message, hint=e.hint) from None

        choice = cls(one(image, "image", "--image"), one(video, "video", "--video"), one(voice, "voice", "--voice"))
        if choice.video and not choice.image:
            raise FieldError("--video", video, "needs keyframes from a provider to animate",
                             hint="add --image PROVIDER:MODEL (image-to-video starts from each shot's keyframe)")
        return choice

    def __bool__(self) -> bool:
        return bool(self.image or self.video or self.voice)

    def spec(self, kind: Kind) -> str:
        pick = getattr(self, kind)
        return f"{pick[0]}:{pick[1]}" if pick else ""


def project_root(job: EpisodeJob) -> Path:
    """The project folder (``PROJECT/synth/epNN`` -> ``PROJECT``): the journal lives there."""
    out = job.out_dir
    return out.parent.parent if out.parent.name == "synth" else out


def open_runner(job: EpisodeJob, names: list[str]) -> TaskRunner:
    """A task runner for this job: the adapters from the config, the budget left, the usage sink."""
    config = job.ctx.config
    providers = {n: create(n, config) for n in dict.fromkeys(names)}
    caps = job.settings.caps
    budget = Budget(None)
    if caps.budget_fen is not None:
        budget = Budget(Decimal(caps.budget_fen) / 100, Decimal(job.spent.cost_fen) / 100)
    store = job.ctx.usage
    if store is not None:
        sink = store_sink(store, job.ctx.run_id)
    else:
        lock = threading.Lock()

        def sink(records: list[UsageRecord]) -> None:
            with lock:
                job.usage.extend(records)

    return TaskRunner(project_root(job), providers, prices=job.prices, budget=budget, usage_sink=sink,
                      cancel=job.ctx.cancel)


def spent_in_run(store: Any, run_id: str) -> Decimal:
    """Yuan the provider calls of a run have cost so far, from their usage records (a budget spans
    every episode of one ``make``)."""
    total = Decimal(0)
    for ev in store.events(run_id):
        price = (ev.get("detail") or {}).get("price_yuan_per_unit")
        if price is not None and ev.get("vendor"):
            total += Decimal(str(price)) * ev["quantity"]
    return total


def retries(job: EpisodeJob) -> int:
    table = getattr(job.ctx.config, "providers", {}) or {}
    try:
        return int((table.get("synth") or {}).get("retries", DEFAULT_RETRIES))
    except ValueError:
        raise FieldError("[providers.synth] retries", table["synth"]["retries"], "must be a whole number") from None


def _charge(job: EpisodeJob, results: list[JobResult]) -> None:
    for r in results:
        if r.cost is not None and r.status == "done":
            job.spent.cost_fen += int((r.cost * 100).to_integral_value())


class ProviderEngine(KeyframeEngine):
    """Pictures from generation providers: sheets, keyframes with references, image-to-video."""

    name = "providers"
    description = ("keyframes, character sheets and image-to-video from cloud model APIs or a local ComfyUI "
                   "(--image/--video PROVIDER:MODEL), metered into the ledger")

    def device(self, job: EpisodeJob) -> str:
        return "remote"

    def choice(self, job: EpisodeJob) -> ProviderChoice:
        choice = job.inp.providers
        if choice is None or not choice.image:
            raise InputError("the providers picture engine needs an image model",
                             hint="pass --image PROVIDER:MODEL, e.g. --image ark:doubao-seedream-4-0-250828")
        return choice

    # KeyframeEngine's generator hooks are not used: requests go through the task runner
    def backend(self, job: EpisodeJob) -> Any:  # pragma: no cover - never called
        raise NotImplementedError

    def account(self, job: EpisodeJob, batch: Any, seconds: Decimal) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------------------
    def accepts_references(self, job: EpisodeJob) -> int:
        provider, model = self.choice(job).image  # type: ignore[misc]
        from pipelines.providers import PROVIDERS

        return int(PROVIDERS.factory(provider).model_info(model, "image").references)  # type: ignore[attr-defined]

    def references(self, job: EpisodeJob, plan: ShotPlan, sheets: dict[str, Path]) -> list[tuple[str, Path]]:
        limit = self.accepts_references(job)
        refs = [(c, sheets[c]) for c in plan.shot.characters if c in sheets]
        return refs[:limit] if limit else []

    def keyframe_key(self, job: EpisodeJob, plan: ShotPlan, refs: list[tuple[str, Path]]) -> str:
        return content_hash({"provider": self.choice(job).spec("image"), "prompt": self.prompt(job, plan.shot),
                             "seed": self.seed(job, plan.shot), "frame": list(job.frame),
                             "negative": self.options(job, plan.shot)["negative_prompt"],
                             "refs": [(n, file_hash(p)) for n, p in refs]})

    def image_job(self, job: EpisodeJob, plan: ShotPlan, refs: list[tuple[str, Path]]) -> Job:
        provider, model = self.choice(job).image  # type: ignore[misc]
        req = GenRequest("image", model, prompt=self.prompt(job, plan.shot), seed=self.seed(job, plan.shot),
                         negative_prompt=self.options(job, plan.shot)["negative_prompt"] or "",
                         references=tuple(p for _, p in refs), width=job.frame[0], height=job.frame[1])
        return Job(f"ep{job.episode.number:02d}/{plan.shot.id}/keyframe", provider, req, retries=retries(job))

    def video_job(self, job: EpisodeJob, plan: ShotPlan, image: Path) -> Job:
        provider, model = self.choice(job).video  # type: ignore[misc]
        seconds = max(1, int(-(-Fraction(plan.frames) / job.fps // 1)))  # the shot's length, rounded up
        req = GenRequest("video", model, prompt=self.prompt(job, plan.shot), image=image,
                         seed=self.seed(job, plan.shot), width=job.frame[0], height=job.frame[1], duration=seconds)
        return Job(f"ep{job.episode.number:02d}/{plan.shot.id}/video", provider, req, retries=retries(job))

    # -- the quote -----------------------------------------------------------------------------
    def quote(self, job: EpisodeJob) -> Quote:
        q = Quote(episode=job.episode.number, engine=self.name, device="remote")
        choice = self.choice(job)
        missing_sheets = [ch for ch in self.sheet_characters(job) if not job.sheet_path(ch.name).exists()] \
            if job.settings.synth.consistency != "off" else []
        adapters: dict[str, Any] = {}

        def adapter(name: str) -> Any:
            if name not in adapters:
                adapters[name] = create(name, job.ctx.config)
            return adapters[name]

        def add(what: str, provider: str, req: GenRequest) -> None:
            for units in adapter(provider).estimate(req):
                model = units.price_key
                if "@" in model and job.prices is not None \
                        and job.prices(model, units.unit, date.today()) is None:
                    model = model.split("@", 1)[0]  # the untiered entry prices it
                q.lines.append(QuoteLine(f"{what} ({provider})", model, units.unit, units.quantity))

        provider, model = choice.image  # type: ignore[misc]
        for ch in missing_sheets:
            add("character sheet", provider, GenRequest("image", model, prompt=ch.appearance or ch.name))
        plans = job.plans or self._plans_without_voices(job)
        for plan in plans:
            png, rec = self.files(job, plan.shot.id)
            made = png.exists() and rec.exists()
            if not made:
                add("keyframe", provider, GenRequest("image", model, prompt=self.prompt(job, plan.shot),
                                                     width=job.frame[0], height=job.frame[1]))
                q.images += 1
            else:
                q.keyframes_cached += 1
            if choice.video:
                motion = job.path("keyframes", f"{plan.shot.id}.motion.json")
                if made and motion.exists():
                    continue
                vp, vm = choice.video
                seconds = max(1, int(-(-Fraction(plan.frames) / job.fps // 1))) if plan.frames else \
                    max(1, int(plan.shot.seconds + 0.999))
                add("image-to-video", vp, GenRequest("video", vm, prompt="x", duration=seconds,
                                                     width=job.frame[0], height=job.frame[1]))
                q.video_clips += 1
        q.images += len(missing_sheets)
        for a in adapters.values():
            a.close()
        return q

    @staticmethod
    def _plans_without_voices(job: EpisodeJob) -> list[ShotPlan]:
        """Shot plans for a quote made before the voices (the screenplay's own shot lengths)."""
        fps = job.fps
        return [ShotPlan(si, sc, sh, [], [], int(Fraction(sh.seconds).limit_denominator(1000) * fps))
                for si, sc in enumerate(job.episode.scenes, 1) for sh in sc.shots]

    # -- making them ---------------------------------------------------------------------------
    def pictures(self, job: EpisodeJob) -> dict[str, Keyframe]:
        choice = self.choice(job)
        names = [pick[0] for pick in (choice.image, choice.video) if pick]
        job.path("keyframes").mkdir(parents=True, exist_ok=True)
        with open_runner(job, names) as runner:
            sheets = self.provider_sheets(job, runner) if job.settings.synth.consistency != "off" else {}
            out = self.provider_keyframes(job, runner, sheets)
        if sheets and out:
            try:
                self.score(job, out, sheets)
            except Exception as e:  # noqa: BLE001 - a score is a report, not a reason to stop
                job.ctx.warn(f"consistency scores could not be computed ({e})")
        return out

    def provider_sheets(self, job: EpisodeJob, runner: TaskRunner) -> dict[str, Path]:
        """A reference sheet per character of the episode, made first (series-wide, made once)."""
        from agents.synth.review import load_sheets, save_sheets
        from pipelines.consistency import sheet_prompt
        from pipelines.diffusion import seed_for

        provider, model = self.choice(job).image  # type: ignore[misc]
        sheets: dict[str, Path] = {}
        todo: list[tuple[Character, Path, Job]] = []
        job.sheet_dir.mkdir(parents=True, exist_ok=True)
        approvals = load_sheets(job.sheet_dir)
        required = bool(getattr(getattr(job.ctx.config, "review", None), "required", False))
        for ch in self.sheet_characters(job):
            path = job.sheet_path(ch.name)
            if path.exists():
                sheets[ch.name] = path
                continue
            rnd = int(approvals.get(ch.name, {}).get("round", 0))  # a reviewer asked for a new one: new seed
            seed = seed_for(job.title, "sheet", ch.name, *([str(rnd)] if rnd else []))
            req = GenRequest("image", model, prompt=sheet_prompt(ch.name, ch.appearance, job.settings.synth.style),
                             seed=seed, width=768, height=1024)
            todo.append((ch, path, Job(f"sheets/{ch.name}", provider, req, retries=retries(job))))
        if todo:
            job.ctx.step(0.2, f"角色设定图 · {len(todo)} character sheets ({provider})")
            results = runner.run([j for _, _, j in todo])
            _charge(job, results)
            self._keep_sheets(job, provider, model, todo, results, approvals, required, sheets)
            save_sheets(job.sheet_dir, approvals)
        pending = [n for n in sheets if approvals.get(n, {}).get("status") == "pending"]
        if required and pending:  # nothing more is paid for until a person approves the look
            from agents.cut import ReviewPending

            raise ReviewPending(
                f"character sheet(s) of {', '.join(pending)} await review ({job.sheet_dir}); no keyframe or video "
                "was requested yet",
                hint=f"approve them: reelforge synth PROJECT --approve-sheet {pending[0]!r} (or --regenerate-sheet "
                     "NAME for a new one), then run again; or turn review off ([review] required = false)")
        return sheets

    def _keep_sheets(self, job: EpisodeJob, provider: str, model: str, todo: list[tuple[Character, Path, Job]],
                     results: list[JobResult], approvals: dict[str, dict[str, Any]], required: bool,
                     sheets: dict[str, Path]) -> None:
        for (ch, path, j), res in zip(todo, results, strict=True):
            if not res.ok:
                job.ctx.warn(f"character sheet of {ch.name}: {provider} could not make it ({res.error}); "
                             "the shots of this character are made without a reference")
                continue
            img = _read_image(res.files[0])
            save_labelled_png(img, path, make_label(job.inp.producer, f"sheet|{ch.name}|{res.seed}"))
            rnd = int(approvals.get(ch.name, {}).get("round", 0))
            approvals[ch.name] = {"status": "pending" if required else "approved",
                                  "by": "" if required else "headless run (review not required)",
                                  "provider": f"{provider}:{model}", "task_id": res.task_id,
                                  "sha256": file_hash(path), "prompt": j.request.prompt, "round": rnd}
            sheets[ch.name] = path

    def provider_keyframes(self, job: EpisodeJob, runner: TaskRunner, sheets: dict[str, Path]) -> dict[str, Keyframe]:
        choice = self.choice(job)
        out: dict[str, Keyframe] = {}
        chains: list[list[Job | Step]] = []
        meta: dict[str, tuple[ShotPlan, str, list[tuple[str, Path]]]] = {}
        for plan in job.plans:
            refs = self.references(job, plan, sheets)
            rkey = self.keyframe_key(job, plan, refs)
            found = self.cached(job, plan.shot, rkey)
            meta[plan.shot.id] = (plan, rkey, refs)
            chain: list[Job | Step] = []
            if found is not None:
                out[plan.shot.id] = found
                if choice.video and not self._cached_motion(job, plan, found):
                    chain.append(self.video_job(job, plan, found.png))
            else:
                chain.append(self.image_job(job, plan, refs))
                if choice.video:
                    chain.append(Step(self.video_job(job, plan, Path("keyframe")), self._bind_video(job)))
            if chain:
                chains.append(chain)
        if not chains:
            return out
        job.ctx.step(0.3, f"关键帧与图生视频 · {len(chains)} shots ({choice.spec('image')} {choice.spec('video')})")
        results = runner.run_chains(chains)
        for chain_res in results:
            _charge(job, chain_res)
            for res in chain_res:
                shot_id = res.job.name.split("/")[1]
                plan, rkey, refs = meta[shot_id]
                kind = res.job.name.rsplit("/", 1)[1]
                if kind == "keyframe":
                    if res.ok:
                        out[shot_id] = self._store_keyframe(job, plan, rkey, refs, res)
                    else:
                        note = (f"shot {shot_id}: {res.job.provider} could not make the keyframe "
                                f"({res.error}); the animatic plate is used")
                        plan.notes.append(note)
                        job.ctx.warn(note)
                elif kind == "video" and shot_id in out:
                    if res.ok:
                        self._store_motion(job, plan, out[shot_id], res)
                    elif res.status != "skipped":
                        note = (f"shot {shot_id}: {res.job.provider} could not animate the keyframe ({res.error}); "
                                "a camera move on the keyframe is used")
                        plan.notes.append(note)
                        job.ctx.warn(note)
        return out

    def _bind_video(self, job: EpisodeJob) -> Any:
        def bind(template: Job, prev: JobResult) -> Job:
            shot_id = template.name.split("/")[1]
            plan = next(p for p in job.plans if p.shot.id == shot_id)
            return self.video_job(job, plan, prev.files[0])

        return bind

    def _store_keyframe(self, job: EpisodeJob, plan: ShotPlan, rkey: str, refs: list[tuple[str, Path]],
                        res: JobResult) -> Keyframe:
        png, rec_path = self.files(job, plan.shot.id)
        img = _read_image(res.files[0])
        label = make_label(job.inp.producer, f"{job.title}|ep{job.episode.number}|{plan.shot.id}|{res.seed}")
        save_labelled_png(img, png, label)
        prompt = self.prompt(job, plan.shot)
        seed = res.seed if res.seed is not None else self.seed(job, plan.shot)
        record: dict[str, Any] = {"prompt": prompt, "seed": seed,
                  "provider": res.job.provider, "model": res.job.request.model, "task_id": res.task_id,
                  "attempts": res.attempts, "source_sha256": res.hashes[0],
                  "references": [{"character": n, "sheet": str(p.relative_to(job.sheet_dir.parent))
                                  if p.is_relative_to(job.sheet_dir.parent) else str(p), "sha256": file_hash(p)}
                                 for n, p in refs]}
        rec_path.write_text(json.dumps({"request_key": rkey, "record": record}, ensure_ascii=False, indent=2),
                            encoding="utf-8")
        return Keyframe(png, rec_path, prompt, int(seed), file_hash(png))

    def _motion_files(self, job: EpisodeJob, plan: ShotPlan) -> tuple[Path, Path]:
        return job.path("keyframes", f"{plan.shot.id}.motion.mp4"), job.path("keyframes", f"{plan.shot.id}.motion.json")

    def _motion_key(self, job: EpisodeJob, plan: ShotPlan, kf: Keyframe) -> str:
        return content_hash({"kf": kf.digest, "video": self.choice(job).spec("video"), "frames": plan.frames})

    def _cached_motion(self, job: EpisodeJob, plan: ShotPlan, kf: Keyframe) -> bool:
        mp4, meta = self._motion_files(job, plan)
        stored = _read_json(meta) if mp4.exists() else {}
        if stored.get("key") != self._motion_key(job, plan, kf):
            return False
        kf.motion = MotionClip(mp4, Fraction(str(stored["fps"])), stored["key"], str(stored["pipeline"]))
        return True

    def _store_motion(self, job: EpisodeJob, plan: ShotPlan, kf: Keyframe, res: JobResult) -> None:
        from core.media import probe

        mp4, meta = self._motion_files(job, plan)
        src = res.files[0]
        try:
            info = probe(src)
        except Exception as e:  # noqa: BLE001 - a result that does not decode is the provider's failure
            note = f"shot {plan.shot.id}: the video from {res.job.provider} cannot be read ({e}); camera move used"
            plan.notes.append(note)
            job.ctx.warn(note)
            return
        if info.video is None:
            plan.notes.append(f"shot {plan.shot.id}: the video from {res.job.provider} has no picture; camera move used")
            return
        mp4.write_bytes(src.read_bytes())
        key = self._motion_key(job, plan, kf)
        pipeline = f"{res.job.provider}:{res.job.request.model}"
        meta.write_text(json.dumps({"key": key, "fps": str(info.video.fps), "pipeline": pipeline,
                                    "task_id": res.task_id, "sha256": res.hashes[0]}, indent=2), encoding="utf-8")
        kf.motion = MotionClip(mp4, info.video.fps, key, pipeline)


# ------------------------------------------------------------------------------------------
# voices
# ------------------------------------------------------------------------------------------
MALE = ("男", "他", "先生", "公子", "少爷", "老爷", "大爷", "哥", "叔", "爹", "父", "爷", "汉", "僧", "王", "帝",
        "man", "male", "boy", "he ")
FEMALE = ("女", "她", "姑娘", "小姐", "夫人", "太太", "娘", "姐", "妹", "婶", "姨", "妈", "母", "婆", "妃", "后",
          "woman", "female", "girl", "she ")
OLD = ("老", "婆", "翁", "爷爷", "奶奶", "白发", "花甲", "old", "elder")
YOUNG = ("少", "小", "年轻", "青年", "姑娘", "公子", "书生", "young")
CHILD = ("童", "孩", "娃", "幼", "child", "kid")


def voice_profile(ch: Character) -> tuple[str, str]:
    """(gender, age band) guessed from the character's name, description and appearance."""
    text = f"{ch.name} {ch.description} {ch.appearance}".lower()

    def score(words: tuple[str, ...]) -> int:
        return sum(text.count(w) for w in words)

    m, f = score(MALE), score(FEMALE)
    gender = "male" if m > f else "female" if f > m else ""
    age = "child" if score(CHILD) else "old" if score(OLD) > score(YOUNG) else "young" if score(YOUNG) else "adult"
    return gender, age if gender else ""


def cast_provider_voices(series: Series, provider: str, table: dict[tuple[str, str], tuple[str, ...]]
                         ) -> dict[str, VoiceSpec]:
    """A voice id of the provider per character: the screenplay's own (``voice: "minimax:female-yujie"``
    or a bare id that is not an espeak voice), else a default from gender and age, different
    characters of the same profile taking turns through the provider's voices."""
    used: dict[tuple[str, str], int] = {}
    narrator = table.get(("", ""), ("",))[0]
    voices: dict[str, VoiceSpec] = {"": VoiceSpec(voice=narrator)}
    for ch in series.characters:
        own = ch.voice.strip()
        if ":" in own:
            prov, _, vid = own.partition(":")
            own = vid if prov == provider else ""
        if own and not ESPEAK_VOICE.match(own):
            spec = VoiceSpec(voice=own)
        else:
            profile = voice_profile(ch)
            options = table.get(profile) or table.get((profile[0], "adult")) or table.get(("", ""), ("",))
            n = used.get(profile, 0)
            used[profile] = n + 1
            spec = VoiceSpec(voice=options[n % len(options)])
        voices[ch.name] = spec
        for alias in ch.aliases:
            voices.setdefault(alias, spec)
    return voices


class ProviderVoice:
    """A provider's speech as a :class:`agents.synth.sound.VoiceEngine` (one task per new line).

    The runner writes each call's usage record (characters as the provider counted them), so
    ``vendor`` is left empty here: the agent's per-engine summary must not count them twice.
    """

    vendor = ""

    def __init__(self, job: EpisodeJob, provider: str, model: str) -> None:
        self.name = provider
        self.model = model
        self.licence = f"{provider} terms of service (generated speech)"
        self.job = job
        self.runner = open_runner(job, [provider])
        self.runner.preflight([provider])  # a refused key stops the run before the first line
        self.table: dict[tuple[str, str], tuple[str, ...]] = getattr(self.runner.provider(provider), "voices", {}) \
            or {("", ""): ("",)}

    def close(self) -> None:
        self.runner.close()

    def cast(self, series: Series) -> dict[str, VoiceSpec]:
        return cast_provider_voices(series, self.name, self.table)

    def _job(self, text: str, spec: VoiceSpec) -> Job:
        voice = spec.voice if spec.voice and not ESPEAK_VOICE.match(spec.voice) else self.table[("", "")][0]
        key = hashlib.sha256(f"{self.model}|{voice}|{spec.speed}|{text}".encode()).hexdigest()[:20]
        req = GenRequest("voice", self.model, text=text, voice=voice, speed=round(spec.speed, 2))
        return Job(f"voices/{key}", self.name, req, retries=0)

    def prefetch(self, job: EpisodeJob, voices: dict[str, VoiceSpec]) -> None:
        """Send every line of the episode at once (within the provider's concurrency): the lines are
        then read back from the journal one by one as the shots are timed, not requested in turn."""
        from agents.synth.job import speaker_of

        jobs: dict[str, Job] = {}
        for sc in job.episode.scenes:
            for sh in sc.shots:
                for ln in sh.lines:
                    spec = voices.get(speaker_of(ln.speaker, ln.kind)) or voices[""]
                    if ln.text.strip():
                        j = self._job(ln.text, spec)
                        jobs[j.name] = j
        if jobs:
            job.ctx.step(0.05, f"配音 · {len(jobs)} lines ({self.name})")
            _charge(self.job, self.runner.run(list(jobs.values())))

    def synthesize(self, text: str, spec: VoiceSpec) -> Speech:
        j = self._job(text, spec)
        voice = j.request.voice
        res = self.runner.run_job(j)
        if res.status != "reused":
            _charge(self.job, [res])
        if not res.ok:
            raise TTSError(f"{self.name}: {res.error}")
        from core.media import read_audio

        rate = 48000
        samples = read_audio(res.files[0], rate=rate, channels=1)[:, 0]
        return Speech(np.ascontiguousarray(samples, dtype=np.float32), rate, self.name, voice, text)



def voice_lines(job: EpisodeJob, provider: str, model: str) -> list[QuoteLine]:
    """The quote's lines for speaking every line of the episode (nothing is sent)."""
    prov = create(provider, job.ctx.config)
    try:
        merged: dict[tuple[str, str], QuoteLine] = {}
        for sc in job.episode.scenes:
            for sh in sc.shots:
                for ln in sh.lines:
                    for units in prov.estimate(GenRequest("voice", model, text=ln.text or " ")):
                        m = merged.setdefault((units.price_key, units.unit),
                                              QuoteLine(f"voices ({provider})", units.price_key, units.unit, Decimal(0)))
                        m.quantity += units.quantity
        return list(merged.values())
    finally:
        prov.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["ProviderChoice", "ProviderEngine", "ProviderVoice", "cast_provider_voices", "voice_lines",
           "voice_profile"]
