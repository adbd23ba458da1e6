"""Fill a level the model could not write from the offline engine's analysis (``--fallback offline``).

The offline engine (:mod:`agents.script.offline`) stages the same episode ranges without a
model. When a level fails validation on every attempt, :class:`OfflineLevels` turns the offline
series' part for it into that level's data: the logline, the cast, an episode's outline entry, an
episode's scenes, or a scene's shots and lines (verbatim from the novel, so they trace). The
engine marks each filled part in the draft (``Draft.filled``), the usage and the run's notes.

This is the seam for mixing engines: each method answers one level from the offline analysis,
with the same types the model's replies validate as.
"""

from __future__ import annotations

import re

from agents.script.llm.draft import (
    CastPlan,
    CharacterPlan,
    ChunkSummary,
    EpisodePlan,
    LinePlan,
    LoglinePlan,
    ScenePlan,
    ScenesPlan,
    ShotPlan,
    ShotsPlan,
)
from agents.script.offline import NARRATOR, Analysis
from core.screenplay import Episode, Scene, Series, Shot

_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?]?")


class OfflineLevels:
    """Level data from the offline series built over the same episode ranges."""

    def __init__(self, an: Analysis, offline: Series) -> None:
        self.an = an
        self.offline = offline

    def summary(self, chunk: str, previous: str, limit: int) -> ChunkSummary:
        """An extractive running summary: the previous one's head, then the first sentence of each paragraph."""
        picks = []
        for para in chunk.split("\n"):
            m = _SENTENCE.search(para.strip())
            if m and len(m.group(0).strip()) >= 6:
                picks.append(m.group(0).strip())
        text = (previous[: limit // 2] + " " if previous else "") + "".join(picks)
        names = [p.name for p in self.an.cast.people if p.name in chunk][:8]
        return ChunkSummary(summary=text[:limit].strip() or chunk[:limit], characters=names)

    def logline(self) -> LoglinePlan:
        o = self.offline
        return LoglinePlan(title=o.title, logline=o.logline or o.title, genre=o.genre)

    def cast(self, limit: int) -> CastPlan:
        people = [c for c in self.offline.characters if c.role != "extra"] or list(self.offline.characters)
        plans = [CharacterPlan(name=c.name, aliases=list(c.aliases), description=c.description,
                               appearance=c.appearance, voice=c.voice, role=c.role) for c in people[:limit]]
        return CastPlan(characters=plans or [CharacterPlan(name=NARRATOR, role="extra")])

    def _episode(self, number: int) -> Episode | None:
        eps = self.offline.episodes
        return eps[number - 1] if 1 <= number <= len(eps) else None

    def episode(self, number: int) -> EpisodePlan:
        ep = self._episode(number)
        if ep is None:
            return EpisodePlan(number=number, title=f"第{number}集")
        synopsis = "；".join(s.summary for s in ep.scenes if s.summary)[:60]
        return EpisodePlan(number=number, title=ep.title, synopsis=synopsis, hook=ep.hook,
                           cliffhanger=ep.cliffhanger, paywall=ep.paywall)

    def scenes(self, number: int) -> ScenesPlan:
        ep = self._episode(number)
        scenes = [self._scene(s) for s in ep.scenes] if ep is not None else []
        return ScenesPlan(scenes=scenes or [ScenePlan()])

    def _scene(self, s: Scene) -> ScenePlan:
        quote = ""
        if s.source is not None:
            quote = self.an.novel.text[s.source.start:s.source.end].strip()[:20]
        return ScenePlan(int_ext=s.int_ext, place=s.place, time_of_day=s.time_of_day, characters=list(s.characters),
                         summary=s.summary, source_quote=quote)

    def shots(self, number: int, k: int, scenes: list[ScenePlan], offline_scenes: bool) -> ShotsPlan | None:
        """Shots for scene ``k`` (1-based) of episode ``number``; None when the offline series has none for it.

        With offline scenes the shots are that scene's. With the model's own scenes, the offline
        shots are shared out by where each scene's quote is in the novel, else in equal runs.
        """
        ep = self._episode(number)
        if ep is None:
            return None
        if offline_scenes:
            picked = list(ep.scenes[k - 1].shots) if k <= len(ep.scenes) else []
        else:
            picked = self._share(ep, k, scenes)
        if not picked:
            return None
        return ShotsPlan(shots=[_shot_plan(sh) for sh in picked])

    def _share(self, ep: Episode, k: int, scenes: list[ScenePlan]) -> list[Shot]:
        shots = ep.shots()
        text = self.an.novel.text
        starts = [text.find(sc.source_quote[:12]) if len(sc.source_quote.strip()) >= 4 else -1 for sc in scenes]
        if all(s >= 0 for s in starts) and starts == sorted(starts):
            lo = starts[k - 1] if k > 1 else -1
            hi = starts[k] if k < len(starts) else len(text) + 1
            return [sh for sh in shots if sh.source is not None and lo <= sh.source.start < hi]
        n = len(scenes)
        a, b = (k - 1) * len(shots) // n, k * len(shots) // n
        return shots[a:b]


def _shot_plan(sh: Shot) -> ShotPlan:
    return ShotPlan(size=str(sh.size), camera=str(sh.camera), visual_prompt=sh.visual_prompt,
                    characters=list(sh.characters), sfx=list(sh.sfx),
                    lines=[LinePlan(speaker=ln.speaker, text=ln.text, kind=str(ln.kind)) for ln in sh.lines])
