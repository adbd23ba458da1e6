"""Hybrid attribution: the rules decide who speaks; an LLM is asked only about the lines they doubt.

The offline analysis gives every quoted line a speaker and a confidence (:mod:`.attribute`).
Lines below ``threshold`` are sent to the model in batches, each with the paragraphs around it
and the names it may choose from; the model's answer replaces the rules' guess only when it names
one of those people. Everything else (cast, scenes, packing, staging) stays the offline engine's,
so a whole novel costs a small fraction of a full LLM pass. Each call is a usage record whose
detail says how many lines were sent and how many the book has, so the saving is on the books.

:func:`generate_hybrid` is what an :class:`~agents.script.llm.engine.LLMEngine` runs when it is
built with ``hybrid_threshold``; :func:`refine_speakers` is the step on its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agents.script.attribute import CROWD, UNKNOWN
from agents.script.base import EngineResult, ScriptInput
from agents.script.llm.client import ChatClient, Completion, Message
from agents.script.llm.structured import ask_json
from agents.script.units import Analysis

if TYPE_CHECKING:
    from agents.base import RunContext
    from agents.script.reader import NovelText
    from agents.script.segment import Segment

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.7
BATCH_LINES = 20
_SYSTEM = ("你是小说对白标注员。对每一句引号里的话，根据上下文判断是谁说的。只能从给出的候选人中选择，"
           "说不准时选最可能的一个。只输出 JSON。")
_TASK = ("[task:speakers]\n下面每一条是小说里的一句对白（<<<>>> 之间是它前后的原文）。"
         "回答 JSON：{\"lines\": [{\"id\": 编号, \"speaker\": \"候选人之一\"}]}\n\n")


class SpeakerAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    speaker: str = ""


class SpeakerBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lines: list[SpeakerAnswer] = Field(default_factory=list)


@dataclass(slots=True)
class HybridReport:
    lines: int = 0  # quoted lines in the book
    sent: int = 0  # ... asked about
    changed: int = 0  # ... whose speaker the model changed
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    rejected: list[str] = field(default_factory=list)  # answers naming no offered candidate

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "sent": self.sent, "changed": self.changed, "calls": self.calls,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "rejected": len(self.rejected)}


def _candidates(an: Analysis, seg: Segment, index: int) -> list[str]:
    """The rules' guess first, then people of the same chapter who spoke or were named nearby."""
    out: list[str] = [seg.speaker] if seg.speaker and seg.speaker not in (UNKNOWN,) else []
    lo, hi = max(0, index - 30), min(len(an.segments), index + 10)
    for s in an.segments[lo:hi]:
        if s.chapter != seg.chapter:
            continue
        if s.kind == "speech" and s.speaker and s.speaker not in (UNKNOWN, CROWD):
            out.append(s.speaker)
        elif s.kind == "narration":
            out += [n for _a, _b, n in an.cast.find(an.novel.text[s.start:s.end])]
    out += [p.name for p in an.cast.people if p.role == "lead"]
    return list(dict.fromkeys(out))[:8] or [UNKNOWN]


def _context(an: Analysis, seg: Segment, width: int = 160) -> str:
    text = an.novel.text
    a = max(0, seg.start - 1 - width)
    b = min(len(text), seg.end + 1 + width // 2)
    return text[a:seg.start - 1] + "【" + text[seg.start - 1:seg.end + 1] + "】" + text[seg.end + 1:b]


def refine_speakers(an: Analysis, client: ChatClient, *, threshold: float = DEFAULT_THRESHOLD,
                    batch_lines: int = BATCH_LINES,
                    on_completion: Callable[[Completion, int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Ask ``client`` about the speech segments below ``threshold``; update them and the units in place."""
    speech = [(i, s) for i, s in enumerate(an.segments) if s.kind == "speech"]
    doubtful = [(i, s) for i, s in speech if s.confidence < threshold]
    rep = HybridReport(lines=len(speech), sent=len(doubtful))
    for k in range(0, len(doubtful), batch_lines):
        batch = doubtful[k:k + batch_lines]
        offered = {n: _candidates(an, s, i) for n, (i, s) in enumerate(batch, start=1)}
        items = "\n".join(
            f"{n}. 候选人：{'、'.join(offered[n])}\n<<<\n{_context(an, s)}\n>>>" for n, (i, s) in enumerate(batch, start=1))
        messages: list[Message] = [{"role": "system", "content": _SYSTEM},
                                   {"role": "user", "content": _TASK + items}]
        detail = {"level": "speakers", "mode": "hybrid" if threshold <= 1.0 else "full", "lines_sent": len(batch),
                  "lines_total": len(speech)}

        def done(c: Completion, attempt: int, detail: dict[str, Any] = detail) -> None:
            rep.calls += 1
            rep.tokens_in += c.tokens_in
            rep.tokens_out += c.tokens_out
            if on_completion is not None:
                on_completion(c, attempt, detail)

        wanted = set(offered)

        def check(v: SpeakerBatch, wanted: set[int] = wanted) -> None:
            got = {a.id for a in v.lines}
            if not wanted <= got:
                raise ValueError(f"lines {sorted(wanted - got)} have no answer; answer every id in {sorted(wanted)}")

        def repair(err: str, items: str = items) -> str:
            return f"[task:speakers]\n上一个回答无效：{err}\n请重新回答，只输出 JSON。\n\n{items}"

        answer = ask_json(client, messages, SpeakerBatch, repair_prompt=repair,
                          on_completion=done, attempts=2, max_tokens=40 * len(batch) + 100,
                          what="speaker reply", check=check)
        for a in answer.lines:
            if a.id not in offered:
                continue
            i, seg = batch[a.id - 1]
            name = an.cast.canonical(a.speaker.strip()) or a.speaker.strip()
            if name not in offered[a.id]:
                rep.rejected.append(f"{a.id}:{a.speaker}")
                continue
            if name != seg.speaker:
                rep.changed += 1
            seg.speaker, seg.how, seg.confidence = name, "llm", max(seg.confidence, threshold)
    by_seg = {i: s for i, s in speech}
    for u in an.units:
        if u.kind != "narration" and u.seg in by_seg:
            u.speaker = by_seg[u.seg].speaker or UNKNOWN
    if rep.rejected:
        log.warning("the model named %d speakers that were not among the candidates; the rules' guess was kept",
                    len(rep.rejected))
    return rep.as_dict()


def generate_hybrid(engine: Any, novel: NovelText, inp: ScriptInput, ctx: RunContext) -> EngineResult:
    """The offline screenplay with the doubtful speakers decided by ``engine``'s model (the LLM engine's hook)."""
    from agents.script.offline import analyse, build_series

    t0 = time.perf_counter()
    an = analyse(novel, ctx)
    ctx.step(0.4, "speakers / 说话人")
    threshold = float(engine.hybrid_threshold)
    usage_before = len(engine._usage)

    hyb = refine_speakers(an, engine.client, threshold=threshold,
                          on_completion=lambda c, attempt, detail: engine._record("speakers", c, attempt, detail))
    series, report = build_series(an, inp, ctx)
    series.engine = f"hybrid:{engine.name}:{engine.client.model}"
    report["hybrid"] = hyb | {"threshold": threshold, "seconds": round(time.perf_counter() - t0, 3)}
    log.info("hybrid attribution: %d of %d lines sent to the model in %d calls (%s)", hyb["sent"], hyb["lines"],
             hyb["calls"], json.dumps(hyb, ensure_ascii=False))
    engine._flush()
    usage = list(engine._usage[usage_before:])
    return EngineResult(series=series, usage=usage, report=report | {"recorded": True})
