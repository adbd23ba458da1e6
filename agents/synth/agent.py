"""The synth agent: one screenplay episode in, shot clips and ``render.json`` out.

It resolves the settings into an :class:`~agents.synth.job.EpisodeJob`, quotes the run and
checks the caps, then runs the steps in order: voices and timing (:mod:`.sound`), the episode's
mix, the pictures from the configured engine (:data:`agents.synth.PICTURE_ENGINES`), the shot
clips (:mod:`.shots`), the cover, and the usage records.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from agents.base import Agent, AgentResult, RunContext
from agents.synth.job import EpisodeJob, SynthInput, resolve_settings
from agents.synth.pictures import PictureEngine
from agents.synth.quote import Quote, QuoteLine, check_quote, price_quote
from agents.synth.review import load_review
from agents.synth.schema import RENDER_FILE, EpisodeRender
from agents.synth.shots import render_cover, render_shots
from agents.synth.sound import VoiceEngine, cast_voices, mix_sound, plan_shots, voice_usage
from core.config import Config
from core.errors import InputError
from core.fonts import find_cjk_font
from core.prices import price_lookup
from core.usage import UsageRecord, seconds_since
from pipelines.tts import get_engine

log = logging.getLogger(__name__)


class SynthAgent(Agent[SynthInput, EpisodeRender]):
    name = "synth"
    description = ("screenplay episode -> shot clips: keyframes (diffusers) or animatic plates, motion, voices, "
                   "music, subtitles and the AI label")

    def __init__(self) -> None:
        self._engines: dict[str, PictureEngine] = {}  # kept between episodes of one batch (loaded models)

    def picture_engine(self, name: str) -> PictureEngine:
        if name not in self._engines:
            from agents.synth import PICTURE_ENGINES

            self._engines[name] = PICTURE_ENGINES.create(name)
        return self._engines[name]

    def job(self, inp: SynthInput, ctx: RunContext) -> EpisodeJob:
        """The episode's job: settings resolved, review state read, the price book chosen."""
        prices = inp.price if inp.price is not None else price_lookup(ctx.config.ledger.price_book)
        return EpisodeJob(inp=inp, settings=resolve_settings(inp, ctx.config), ctx=ctx,
                          episode=inp.series.episode(inp.episode), review=load_review(inp.out_dir), prices=prices)

    # ---------------------------------------------------------------------------------------
    def quote(self, inp: SynthInput, config: Config) -> Quote:
        """Dry run: what generating this episode will take and cost (nothing is generated)."""
        inp.check()
        job = self.job(inp, RunContext(config=config))
        return self._quote(job, self.picture_engine(job.settings.engine))

    def _quote(self, job: EpisodeJob, pictures: PictureEngine) -> Quote:
        q = pictures.quote(job)
        choice = job.inp.providers
        if choice is not None and choice.voice:
            from agents.synth.providers import voice_lines

            q.lines.extend(voice_lines(job, *choice.voice))
            q.tts_characters = sum(len(ln.text) for sc in job.episode.scenes for sh in sc.shots for ln in sh.lines)
        elif job.inp.tts == "http":
            lines = [ln for sc in job.episode.scenes for sh in sc.shots for ln in sh.lines]
            model = job.settings.tts.http_model or "http"
            q.tts_characters = sum(len(ln.text) for ln in lines)
            q.api_calls = len(lines)
            q.lines.append(QuoteLine("TTS characters", model, "character", Decimal(q.tts_characters)))
            q.lines.append(QuoteLine("TTS calls", model, "api_call", Decimal(q.api_calls)))
        return price_quote(q, job.prices)

    # ---------------------------------------------------------------------------------------
    def run(self, inp: SynthInput, ctx: RunContext) -> AgentResult[EpisodeRender]:
        start = time.perf_counter()
        job = self.job(inp, ctx)
        ep = job.episode
        shots = [(si, scene, shot) for si, scene in enumerate(ep.scenes, 1) for shot in scene.shots]
        if not shots:
            raise InputError(f"episode {inp.episode} has no shots", hint="edit screenplay.json or re-run the script stage")
        opened: list[Any] = []  # provider sessions, closed when the run ends
        try:
            return self._run(job, ctx, start, shots, opened)
        finally:
            for item in opened:
                item.close()

    def _run(self, job: EpisodeJob, ctx: RunContext, start: float, shots: list[Any],
             opened: list[Any]) -> AgentResult[EpisodeRender]:
        inp, ep = job.inp, job.episode
        provider_voice = None
        voice: VoiceEngine = get_engine(inp.tts, job.settings.tts)
        if voice.name == "silence" and inp.tts == "auto" and not (inp.providers and inp.providers.voice):
            ctx.warn("no offline Chinese voice installed: the episode has a silent voice track "
                     "(apt-get install espeak-ng, or pip install espeakng-loader)")
        font = find_cjk_font()
        inp.out_dir.mkdir(parents=True, exist_ok=True)
        pictures = self.picture_engine(job.settings.engine)
        quote = self._quote(job, pictures)
        unpriced = check_quote(job.settings.caps, quote, job.spent)
        if unpriced:
            ctx.warn(unpriced)
        if quote.images:
            for note in quote.notes:
                log.info("quote: %s", note)
        if inp.providers is not None and inp.providers.voice:  # after the budget check: nothing paid before it
            from agents.synth.providers import ProviderVoice

            provider_voice = ProviderVoice(job, *inp.providers.voice)
            opened.append(provider_voice)
            voice = provider_voice

        ctx.step(0.0, "配音 · voices")
        cast = provider_voice.cast(inp.series) if provider_voice is not None else cast_voices(inp.series)
        if provider_voice is not None:
            provider_voice.prefetch(job, cast)
        voicing = plan_shots(job, voice, cast, shots)
        sound = mix_sound(job)
        keyframes = pictures.pictures(job)
        renders, reused = render_shots(job, voice.name, sound, keyframes)
        ctx.step(1.0, "镜头合成完成 · shots done")
        cover = render_cover(job, keyframes)

        notes = sorted({note for r in renders for note in r.notes} | set(sound.notes))
        mix = sound.report
        if mix.lufs > -70 and abs(mix.lufs - job.settings.loudness) > 0.5:
            notes.append(f"episode loudness {mix.lufs} LUFS misses the target {job.settings.loudness}")
        elif mix.reduction_db > 6:
            log.info("the peak limiter took up to %.1f dB off the loudest moments", mix.reduction_db)
        result = EpisodeRender(
            episode=ep.number, title=ep.title, engine=job.settings.engine, tts_engine=voice.name,
            fps=str(inp.fps), width=inp.width, height=inp.height, audio_rate=inp.audio_rate, shots=renders,
            cover=cover.relative_to(inp.out_dir).as_posix(), loudness_lufs=mix.lufs, peak_db=mix.peak_db,
            music=sound.music, notes=notes,
        )
        render_path = result.save(inp.out_dir / RENDER_FILE)
        for note in notes:
            ctx.warn(note)
        elapsed = seconds_since(start, time.perf_counter())
        animatic = job.settings.engine == "animatic"
        usage = [UsageRecord(stage=self.name, engine="animatic" if animatic else "compositor", unit="cpu_second",
                             quantity=elapsed, seconds=elapsed, model="animatic-cards" if animatic else "compositor",
                             device="cpu", licence="Apache-2.0 (ReelForge)",
                             detail={"episode": ep.number, "shots": len(renders), "reused": reused}),
                 *job.usage, *voice_usage(job, voice, voicing),
                 UsageRecord(stage=self.name, engine="font", unit="use", quantity=Decimal(1), model=font.name,
                             licence=font.licence, detail={"path": str(font.path), "source": font.source})]
        ctx.record(usage)
        log.info("synth: episode %d, %d shots (%d reused), %d frames, %s LUFS", ep.number, len(renders), reused,
                 result.total_frames, mix.lufs)
        return AgentResult(output=result, engine=f"{job.settings.engine}+{voice.name}", files=[render_path],
                           usage=usage, notes=notes)
