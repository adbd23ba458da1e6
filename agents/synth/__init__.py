"""Synth agent: turn an episode of the screenplay into shot clips (picture + voice).

The walk of one shot: screenplay line -> voice (:mod:`.sound`) -> keyframe (a picture engine,
:mod:`.pictures` / :mod:`.keyframes`) -> motion (a camera move, or image-to-video) -> shot clip
with cards, subtitles and the AI label (:mod:`.shots`). The package:

* :mod:`.schema` - ``render.json``: :class:`EpisodeRender`, :class:`ShotRender`, :class:`TimedLine`;
* :mod:`.job` - :class:`SynthInput` (checked up front), the resolved settings and the
  :class:`EpisodeJob` every step takes;
* :mod:`.quote` - the dry-run quote, priced from :mod:`core.prices`, and the budget caps;
* :mod:`.review` - the review gate's store (``review.json``);
* :mod:`.sound` - voices (any :class:`VoiceEngine`), timing to the frame, the episode's mix;
* :mod:`.pictures` - the :class:`PictureEngine` interface and the ``animatic`` engine;
* :mod:`.keyframes` - generated keyframes (``diffusers``), sheets, consistency, image-to-video;
* :mod:`.shots` - the compositor and the shot cache;
* :mod:`.agent` - :class:`SynthAgent`, which runs the steps.

Picture engines are declared here in :data:`PICTURE_ENGINES`; a plug-in registers one through
the ``reelforge.plugins`` entry point ``picture.<name>``.

Everything is cached under ``synth/epNN/`` with keys of what shaped it (speech per line,
keyframes per shot with their seeds and settings, clips per shot), so an interrupted run
resumes, an edited line re-renders only its shot, and a keyframe can be made again exactly.
"""

from __future__ import annotations

from agents.synth.agent import SynthAgent
from agents.synth.job import EpisodeJob, Settings, ShotPlan, SynthInput, resolve_settings
from agents.synth.keyframes import DiffusersEngine, KeyframeBackend, KeyframeEngine
from agents.synth.pictures import AnimaticEngine, Keyframe, MotionClip, PictureEngine
from agents.synth.quote import BudgetExceeded, Quote, QuoteLine, yuan_to_fen
from agents.synth.review import (
    REVIEW_FILE,
    SHOT_SETTINGS,
    ReviewEntry,
    ShotSettings,
    load_review,
    review_shot,
)
from agents.synth.schema import (
    NARRATOR,
    RENDER_FILE,
    RENDER_VERSION,
    EngineChoice,
    EpisodeRender,
    MotionKind,
    PictureEngineName,
    ReviewStatus,
    ShotRender,
    TimedLine,
)
from agents.synth.sound import GAP, LEAD_IN, MAX_SILENT_SHOT, MIN_SHOT, TAIL, VoiceEngine
from core.registry import Registry

PICTURE_ENGINES: Registry[PictureEngine] = Registry("picture", "picture engines for synth keyframes / 画面引擎")
PICTURE_ENGINES.add("animatic", "agents.synth.pictures:AnimaticEngine", description=AnimaticEngine.description)
PICTURE_ENGINES.add("diffusers", "agents.synth.keyframes:DiffusersEngine", description=DiffusersEngine.description,
                    extra="gpu", requires=("diffusers", "transformers"))
PICTURE_ENGINES.add("providers", "agents.synth.providers:ProviderEngine", extra="providers", requires=("httpx",),
                    description="keyframes, character sheets and image-to-video from generation providers "
                                "(--image/--video PROVIDER:MODEL)")

__all__ = [
    "GAP", "LEAD_IN", "MAX_SILENT_SHOT", "MIN_SHOT", "NARRATOR", "PICTURE_ENGINES", "RENDER_FILE", "RENDER_VERSION",
    "REVIEW_FILE", "SHOT_SETTINGS", "TAIL",
    "AnimaticEngine", "BudgetExceeded", "DiffusersEngine", "EngineChoice", "EpisodeJob", "EpisodeRender",
    "Keyframe", "KeyframeBackend", "KeyframeEngine", "MotionClip", "MotionKind", "PictureEngine", "PictureEngineName",
    "Quote", "QuoteLine", "ReviewEntry", "ReviewStatus", "Settings", "ShotPlan", "ShotRender", "ShotSettings",
    "SynthAgent", "SynthInput", "TimedLine", "VoiceEngine",
    "load_review", "resolve_settings", "review_shot", "yuan_to_fen",
]
