"""Who says what: speaker accuracy per attribution pattern, cast precision/recall and place recall.

    python -m benchmarks script_attribution [--set dev|heldout|fresh|fresh2|all] [--show-wrong]
                                            [--modes offline,hybrid,full] [--baseline-ref REF[,REF]]

Scores the screenplays written from the hand-labelled texts in ``benchmarks/attribution/``
(see :mod:`benchmarks._attribution_set`). ``offline`` is the rule engine; ``hybrid`` sends the
lines the rules are unsure of to an LLM; ``full`` sends every line. Both LLM modes run here against
the loopback fake server, whose "model" answers each line with the first name the prompt offers:
those rows check the plumbing (batching, parsing, usage records, the saving), not a model's skill.
``--baseline-ref`` also scores the offline engine of an older commit (checked out with
``git archive`` into a temporary folder) in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._attribution_set import PATTERNS, LabelledText, Score, load_all, score
from benchmarks.common import machine

ROOT = Path(__file__).resolve().parents[1]


def _offline_series(lt: LabelledText) -> tuple[Any, dict[str, Any]]:
    from agents.script.base import ScriptInput
    from agents.script.offline import analyse, build_series
    from agents.script.reader import literal_text

    novel = literal_text(lt.text)
    an = analyse(novel)
    series, report = build_series(an, ScriptInput(source=lt.text))
    return series, report


def run_offline(texts: list[LabelledText]) -> tuple[Score, float]:
    total = Score()
    t0 = time.perf_counter()
    for lt in texts:
        series, report = _offline_series(lt)
        total.add(score(lt, series, report["cut_lines"]))
    return total, time.perf_counter() - t0


def run_llm(texts: list[LabelledText], threshold: float) -> tuple[Score, dict[str, int]]:
    """Hybrid (``threshold`` < 1) or full (every line) attribution against the loopback fake server."""
    from agents.script.base import ScriptInput
    from agents.script.hybrid import refine_speakers
    from agents.script.llm.client import OpenAICompatClient
    from agents.script.offline import analyse, build_series
    from agents.script.reader import literal_text
    from tests.support.speaker_server import FakeSpeakerServer

    total = Score()
    usage = {"lines": 0, "sent": 0, "calls": 0, "tokens_in": 0, "tokens_out": 0}
    with FakeSpeakerServer() as srv:
        client = OpenAICompatClient(srv.url, "fake-speakers", "", timeout_s=10, max_retries=0, concurrency=2)
        for lt in texts:
            an = analyse(literal_text(lt.text))
            report = refine_speakers(an, client, threshold=threshold)
            series, rep = build_series(an, ScriptInput(source=lt.text))
            total.add(score(lt, series, rep["cut_lines"]))
            for k in usage:
                usage[k] += int(report.get(k, 0))
    return total, usage


def _baseline(ref: str, texts: list[LabelledText]) -> Score | None:
    """Score the offline engine of commit ``ref`` on the same texts, in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "agents", "core", "ledger", "pipelines",
                                  "models"], capture_output=True, check=False)
        if archive.returncode != 0:
            print(f"baseline {ref}: git archive failed: {archive.stderr.decode()[:200]}", file=sys.stderr)
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        child = (
            "import json, sys\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from agents.script.base import ScriptInput\n"
            "from agents.script.offline import analyse, build_series\n"
            "from agents.script.reader import literal_text\n"
            "out = []\n"
            "for text in json.load(sys.stdin):\n"
            "    s, r = build_series(analyse(literal_text(text)), ScriptInput(source=text))\n"
            "    out.append([s.to_json(), r.get('cut_lines', [])])\n"
            "print(json.dumps(out))\n"
        )
        env = dict(os.environ, PYTHONPATH=tmp)
        res = subprocess.run([sys.executable, "-c", child, tmp], input=json.dumps([t.text for t in texts]),
                             capture_output=True, text=True, env=env, cwd=tmp, check=True)
    from core.screenplay import Series

    total = Score()
    for lt, (js, cut) in zip(texts, json.loads(res.stdout.strip().splitlines()[-1]), strict=True):
        total.add(score(lt, Series.from_json(js), cut))
    return total


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} % ({a}/{b})" if b else "-"


def table(rows: list[tuple[str, Score]]) -> str:
    head = ["engine", "lines right", "cut for length (reported)", "dropped", *PATTERNS, "cast precision", "speaker recall", "place recall"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows:
        cells = [name, _pct(s.right, s.lines), str(s.cut), str(s.dropped)]
        cells += [_pct(s.right_by_pattern[p], s.by_pattern[p]) if s.by_pattern[p] else "-" for p in PATTERNS]
        cells += [_pct(s.cast_right, s.cast), _pct(s.speakers_found, s.speakers), _pct(s.places_found, s.places)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--set", choices=("dev", "heldout", "fresh", "fresh2", "all"), default="dev")
    ap.add_argument("--modes", default="offline", help="comma list of offline, hybrid, full")
    ap.add_argument("--threshold", type=float, default=0.7, help="hybrid: lines below this confidence go to the LLM")
    ap.add_argument("--baseline-ref", default=None, help="also score the offline engine of these git commits (comma list)")
    ap.add_argument("--show-wrong", action="store_true")
    args = ap.parse_args(argv)
    texts = load_all(args.set)
    print(f"machine: {machine()}")
    print(f"set: {args.set} ({len(texts)} texts: {', '.join(t.name for t in texts)}; "
          f"{sum(len(t.labels) for t in texts)} labelled lines)")
    rows: list[tuple[str, Score]] = []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for ref in [r.strip() for r in (args.baseline_ref or "").split(",") if r.strip()]:
        base = _baseline(ref, texts)
        if base is not None:
            rows.append((f"offline @ {ref} (baseline)", base))
    for mode in modes:
        if mode == "offline":
            s, secs = run_offline(texts)
            rows.append(("offline", s))
            print(f"offline: {secs:.2f} s for {len(texts)} texts")
        elif mode in ("hybrid", "full"):
            s, usage = run_llm(texts, args.threshold if mode == "hybrid" else 2.0)
            rows.append((f"{mode} (fake server: plumbing only)", s))
            print(f"{mode}: {usage['sent']} of {usage['lines']} lines sent to the LLM in {usage['calls']} calls, "
                  f"{usage['tokens_in']} tokens in, {usage['tokens_out']} tokens out")
        else:
            print(f"unknown mode {mode!r}", file=sys.stderr)
            return 2
    print(table(rows))
    for name, s in rows:
        if s.bad_cast:
            print(f"{name}: not characters in the cast: {', '.join(s.bad_cast)}")
        if args.show_wrong:
            for w in s.wrong:
                print(f"  {name}: {w}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
