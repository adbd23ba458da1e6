"""Episodes from scenes: plan which scenes each episode covers, then pack lines into its time budget.

:func:`plan_episodes` spreads the novel's chapters and scenes over the episodes (contiguous, in
story order). :func:`pack_episode` chooses, for one episode, the blocks (a narration line or a
short run of dialogue) that carry the story within the target length, cuts at the tensest line
of the last scene (the cliffhanger) and stages what it keeps with a :class:`~.staging.Stager`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from agents.script.scenes import SceneDraft
from agents.script.segment import Segment
from agents.script.staging import Stager
from agents.script.units import Analysis, Unit, tension
from core.screenplay import Episode

TOLERANCE = 0.15  # an episode's planned length stays within ±15 % of the target
_FILL_LOW, _FILL_HIGH = 0.92, 1.08  # what the packer aims for, inside the tolerance
DIALOGUE_BONUS = 40.0  # a quoted line outranks any narration line
CHARS_PER_EPISODE = 6000  # whole-novel default: one episode per ~6000 source characters, at least one per chapter


@dataclass(slots=True, eq=False)
class Block:
    """What the packer keeps or drops as a whole: a narration line or a short run of dialogue."""

    units: list[Unit]
    scene: int
    score: float
    seconds: float
    forced: bool = False

    @property
    def order(self) -> int:
        return self.units[0].start


def _value(b: Block) -> float:
    """Worth per second, with a fixed cost per block so whole exchanges beat scattered short lines.

    Dialogue comes first: every quoted line is kept while the episode has room (what is cut for
    length is reported), narration fills what is left."""
    spoken = any(u.kind != "narration" for u in b.units)
    return (b.score + (DIALOGUE_BONUS if spoken else 0.0)) / (b.seconds + 4.0)


def _largest_remainder(weights: list[float], total: int, minimum: int) -> list[int]:
    base = [minimum] * len(weights)
    left = total - minimum * len(weights)
    if left <= 0:
        return base
    s = sum(weights) or 1.0
    raw = [w / s * left for w in weights]
    alloc = [math.floor(r) for r in raw]
    rem = left - sum(alloc)
    order = sorted(range(len(weights)), key=lambda i: (-(raw[i] - alloc[i]), i))
    for i in order[:rem]:
        alloc[i] += 1
    return [b + a for b, a in zip(base, alloc, strict=True)]


def _split_scene(sc: SceneDraft, parts: int) -> list[SceneDraft]:
    """Cut a scene at paragraph boundaries into ``parts`` pieces of similar length."""
    paras: list[list[Segment]] = []
    for s in sc.segs:
        if not paras or paras[-1][-1].para != s.para:
            paras.append([])
        paras[-1].append(s)
    parts = max(1, min(parts, len(paras)))
    total = sum(s.end - s.start for s in sc.segs) or 1
    out: list[SceneDraft] = []
    acc = 0
    cur = SceneDraft(chapter=sc.chapter, place=sc.place, time_of_day=sc.time_of_day, int_ext=sc.int_ext,
                     place_span=sc.place_span)
    for k, para in enumerate(paras):
        cur.segs.extend(para)
        acc += sum(s.end - s.start for s in para)
        remaining_parts = parts - len(out) - 1
        if remaining_parts > 0 and acc >= total * (len(out) + 1) / parts and len(paras) - k - 1 >= remaining_parts:
            out.append(cur)
            cur = SceneDraft(chapter=sc.chapter, place=sc.place, time_of_day=sc.time_of_day, int_ext=sc.int_ext)
    if cur.segs:
        out.append(cur)
    return out


def plan_episodes(an: Analysis, episodes: int | None) -> list[list[int]]:
    """Scene indices of each episode, contiguous and in story order."""
    chapters: list[list[int]] = []
    for k, sc in enumerate(an.scenes):
        if not chapters or an.scenes[chapters[-1][0]].chapter != sc.chapter:
            chapters.append([])
        chapters[-1].append(k)
    weights = [sum(an.scenes[k].chars() for k in ch) for ch in chapters]
    total_chars = sum(weights)
    if episodes is None:
        episodes = max(len(chapters), math.ceil(total_chars / CHARS_PER_EPISODE))
    if episodes >= len(chapters):
        alloc = _largest_remainder([float(w) for w in weights], episodes, 1)
        plan: list[list[int]] = []
        for ch, k in zip(chapters, alloc, strict=True):
            plan.extend(_partition(an, ch, k))
        return plan
    # fewer episodes than chapters: consecutive chapters share an episode
    plan = []
    acc = 0
    target = total_chars / episodes
    cur: list[int] = []
    for i, (ch, w) in enumerate(zip(chapters, weights, strict=True)):
        cur.extend(ch)
        acc += w
        left_eps = episodes - len(plan) - 1
        left_chaps = len(chapters) - i - 1
        if left_eps > 0 and (acc >= target * (len(plan) + 1) or left_chaps == left_eps):
            plan.append(cur)
            cur = []
    if cur:
        plan.append(cur)
    return plan


def _partition(an: Analysis, scene_ids: list[int], k: int) -> list[list[int]]:
    """Split one chapter's scenes into ``k`` groups; split scenes when there are too few."""
    if k <= 1:
        return [list(scene_ids)]
    ids = list(scene_ids)
    while len(ids) < k:
        biggest = max(ids, key=lambda i: an.scenes[i].chars())
        pieces = _split_scene(an.scenes[biggest], 2)
        if len(pieces) < 2:
            break
        _replace_scene(an, biggest, pieces)
        pos = ids.index(biggest)
        new_ids = [biggest] + list(range(len(an.scenes) - len(pieces) + 1, len(an.scenes)))
        ids[pos:pos + 1] = new_ids
    weights = [an.scenes[i].chars() for i in ids]
    total = sum(weights) or 1
    groups: list[list[int]] = []
    cur: list[int] = []
    acc = 0
    for j, (i, w) in enumerate(zip(ids, weights, strict=True)):
        cur.append(i)
        acc += w
        left_groups = k - len(groups) - 1
        if left_groups > 0 and (acc >= total * (len(groups) + 1) / k or len(ids) - j - 1 == left_groups):
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _replace_scene(an: Analysis, index: int, pieces: list[SceneDraft]) -> None:
    """Put ``pieces[0]`` at ``index`` and append the rest; re-point the units."""
    an.scenes[index] = pieces[0]
    start_new = len(an.scenes)
    an.scenes.extend(pieces[1:])
    bounds = [(p.start, p.end, idx) for p, idx in zip(pieces, [index, *range(start_new, len(an.scenes))], strict=True)]
    for u in an.units:
        if u.scene == index:
            for a, b, idx in bounds:
                if a <= u.start < b or (a <= u.start and u.end <= b):
                    u.scene = idx
                    break



def pack_episode(an: Analysis, stager: Stager, number: int, scene_ids: list[int],
             units_by_scene: dict[int, list[Unit]], target: float) -> tuple[Episode, float]:
    max_scenes = max(1, round(target / 30))
    candidates = [k for k in scene_ids if units_by_scene.get(k)]
    if not candidates:
        candidates = scene_ids[:1]

    def scene_value(k: int) -> float:
        us = sorted((u.score for u in units_by_scene.get(k, [])), reverse=True)[:8]
        dialogue = sum(1 for u in units_by_scene.get(k, []) if u.kind != "narration")
        return sum(us) + min(dialogue, 10) * 0.3

    chosen = set(candidates)
    if len(candidates) > max_scenes:
        keep = {candidates[-1]}  # the last scene carries the cliffhanger
        for k in sorted(candidates[:-1], key=lambda k: (-scene_value(k), k)):
            if len(keep) >= max_scenes:
                break
            keep.add(k)
        chosen = keep
    order = [k for k in candidates if k in chosen]
    spare = [k for k in candidates if k not in chosen]

    # the cliffhanger: the tensest line in the back half of the last scene, at or after its last
    # quoted line (so no speech is cut for it); nothing after it
    last = order[-1]
    last_units = units_by_scene.get(last, [])
    cliff_unit: Unit | None = None
    if last_units:
        spoken = [i for i, u in enumerate(last_units) if u.kind != "narration"]
        back = last_units[max(len(last_units) // 2, spoken[-1] if spoken else 0):]
        fits = [u for u in last_units[len(last_units) // 2:] if u.seconds <= 0.25 * target]
        # a long speech cannot be forced in: end on a shorter line (the speech is then cut and reported)
        back = [u for u in back if u.seconds <= 0.25 * target] or fits or back[-1:]
        cliff_unit = max(back, key=lambda u: (u.tension + (0.5 if u.kind != "narration" else 0.0) - (3 if u.poem else 0),
                                              u.start))
    cut = cliff_unit.end if cliff_unit else None

    def blocks_of(k: int) -> list[Block]:
        us = [u for u in units_by_scene.get(k, []) if cut is None or k != last or u.end <= cut]
        out: list[Block] = []
        i = 0
        sc = an.scenes[k]
        while i < len(us):
            u = us[i]
            if u.kind == "narration":
                forced = bool(sc.place_span and u.start <= sc.place_span[0] < u.end) or (u is cliff_unit)
                out.append(Block([u], k, u.score + (5.0 if forced else 0.0), u.seconds + 0.3, forced))
                i += 1
                continue
            run = [u]
            while (i + len(run) < len(us) and len(run) < 6 and us[i + len(run)].kind != "narration"
                   and us[i + len(run)].para - run[-1].para <= 1
                   and sum(x.seconds for x in run) + us[i + len(run)].seconds <= 20):
                run.append(us[i + len(run)])
            forced = cliff_unit is not None and any(x is cliff_unit for x in run)
            speakers = len({x.speaker for x in run})
            score = sum(x.score for x in run) + 1.5 * (speakers - 1)  # an exchange beats a lone line
            out.append(Block(run, k, score + (5.0 if forced else 0.0), sum(x.seconds for x in run) + 0.5 * len(run), forced))
            i += len(run)
        return out

    pool: dict[int, list[Block]] = {k: blocks_of(k) for k in order + spare}
    # the place narration is forced only when it opens the scene's chosen material; keep it cheap
    selected: list[Block] = [b for k in order for b in pool[k] if b.forced]
    budget = target * 0.97

    def est(blocks: list[Block]) -> float:
        scenes_in = {b.scene for b in blocks}
        return sum(b.seconds for b in blocks) + 2.2 * len(scenes_in)

    remaining = sorted((b for k in order for b in pool[k] if not b.forced),
                       key=lambda b: (-_value(b), b.order))
    for b in remaining:
        if est(selected + [b]) <= budget:
            selected.append(b)
    # still short: borrow from scenes left out, best first
    if est(selected) < target * _FILL_LOW and spare:
        extra = sorted((b for k in spare for b in pool[k] if b.order < (cut or 1 << 60)),
                       key=lambda b: (-_value(b), b.order))
        for b in extra:
            if est(selected + [b]) <= budget:
                selected.append(b)

    def build(blocks: list[Block]) -> Episode:
        by_scene: dict[int, list[Unit]] = {}
        for b in sorted(blocks, key=lambda b: b.order):
            by_scene.setdefault(b.scene, []).extend(b.units)
        scenes_out = []
        for n, k in enumerate(sorted(by_scene, key=lambda k: an.scenes[k].start), start=1):
            us = sorted(by_scene[k], key=lambda u: u.start)
            scenes_out.append(stager.scene(number, n, an.scenes[k], us))
        return Episode(number=number, title="", target_seconds=target, scenes=scenes_out)

    ep = build(selected)
    # exact fit: the staged length (shot padding, establishing shots) decides
    for _ in range(60):
        total = sum(s.seconds for s in ep.shots())
        if total > target * _FILL_HIGH:
            droppable = [b for b in selected if not b.forced]
            if not droppable:
                break
            worst = min(droppable, key=lambda b: (_value(b), -b.order))
            selected.remove(worst)
        elif total < target * _FILL_LOW:
            in_scenes = {b.scene for b in selected}
            taken = {id(b) for b in selected}
            left = [b for k in order + spare for b in pool[k] if id(b) not in taken
                    and (b.scene in in_scenes or total + b.seconds + 3 < target * _FILL_HIGH)]
            fitting = [b for b in left if b.seconds <= target * _FILL_HIGH - total]
            if not fitting:
                break
            best = max(fitting, key=lambda b: (_value(b), -b.order))
            selected.append(best)
        else:
            break
        ep = build(selected)

    lines = [(ln, sh) for sh in ep.shots() for ln in sh.lines]
    if lines:
        head = lines[: max(1, len(lines) // 3)]
        hook_line = max(head, key=lambda x: (tension(x[0].text) + (0.5 if x[0].kind != "narration" else 0), -lines.index(x)))[0]
        ep.hook = f"{hook_line.speaker}：{hook_line.text}" if hook_line.kind != "narration" else hook_line.text
        last_line = lines[-1][0]
        ep.cliffhanger = f"{last_line.speaker}：{last_line.text}" if last_line.kind != "narration" else last_line.text
    cliff = tension(lines[-1][0].text) if lines else 0.0
    return ep, cliff


def episode_titles(an: Analysis, plan: list[list[int]]) -> list[str]:
    """The chapter's name; a chapter spread over several episodes numbers its parts."""
    by_index = {c.index: c for c in an.book.chapters}
    firsts = [an.scenes[ids[0]].chapter if ids else 0 for ids in plan]
    spans = [{an.scenes[k].chapter for k in ids} for ids in plan]
    per_chapter = Counter(next(iter(sp)) for sp in spans if len(sp) == 1)
    seen: Counter[int] = Counter()
    titles: list[str] = []
    for n, (ch, sp) in enumerate(zip(firsts, spans, strict=True), start=1):
        chapter = by_index.get(ch)
        if chapter is None:
            titles.append(f"第{n}集")
            continue
        name = re.sub(r"[\u3000\s]+", " ", chapter.name or chapter.label).strip()
        if len(sp) == 1 and per_chapter[ch] > 1:
            seen[ch] += 1
            name = f"{name}（{seen[ch]}）"
        titles.append(name)
    return titles
