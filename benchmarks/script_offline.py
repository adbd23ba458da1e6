"""Offline script engine: time and peak memory on each novel, against a read+split baseline.

    python -m benchmarks.script_offline [--novels DIR] [--repeat N] [--episodes N] [--baseline-ref REF]

Each measurement runs in a fresh process so peak RSS (``ru_maxrss``) is that run's alone. The
baseline is reading, decoding, cleaning and splitting chapters only (the floor any engine pays);
"full" is the whole offline engine: analysis, cast, attribution, scenes, packing and staging.
``--baseline-ref`` also runs the whole engine of an older commit (``git archive`` into a temporary
folder), alternating with the current one, so both are timed in the same run on the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_NOVELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "novels"

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from agents.script.reader import read_novel
from agents.script.text import split_book
mode, path, episodes = sys.argv[2], sys.argv[3], sys.argv[4]
t0, c0 = time.perf_counter(), time.process_time()
novel = read_novel(path)
out = {"chars": len(novel.text)}
if mode == "baseline":
    book = split_book(novel.text)
    out["chapters"] = len(book.chapters)
else:
    from agents.script.base import ScriptInput
    from agents.script.offline import analyse, build_series
    an = analyse(novel)
    series, report = build_series(an, ScriptInput(source=path, episodes=int(episodes) if episodes != "-" else None))
    out.update(chapters=report["chapters"], episodes=len(series.episodes),
               shots=sum(len(e.shots()) for e in series.episodes),
               lines=sum(len(s.lines) for e in series.episodes for s in e.shots()),
               characters=len(series.characters))
out["seconds"] = time.perf_counter() - t0
out["cpu_seconds"] = time.process_time() - c0  # what the run costs whatever else loads the machine
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs, "
            f"Python {platform.python_version()}, load {load:.1f}")


def measure(mode: str, path: Path, episodes: str, root: str | None = None) -> dict[str, float]:
    root = root or str(Path(__file__).resolve().parents[1])
    res = subprocess.run([sys.executable, "-c", _CHILD, root, mode, str(path), episodes], cwd=root,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--novels", type=Path, default=Path(os.environ.get("REELFORGE_SHARED_DATA", DEFAULT_NOVELS.parent)) / "novels"
                    if os.environ.get("REELFORGE_SHARED_DATA") else DEFAULT_NOVELS)
    ap.add_argument("--repeat", type=int, default=3, help="runs per novel; the best is reported")
    ap.add_argument("--episodes", default="-", help="episodes (default: the whole novel)")
    ap.add_argument("--baseline-ref", default=None, help="also time the whole engine of this git commit")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old = None
        if args.baseline_ref:
            repo = Path(__file__).resolve().parents[1]
            archive = subprocess.run(["git", "-C", str(repo), "archive", args.baseline_ref, "agents", "core", "ledger",
                                      "pipelines", "models"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            old = tmp
        return _run(args, old)


def _run(args: argparse.Namespace, old: str | None) -> int:
    novels = sorted(args.novels.glob("*.txt"), key=lambda p: p.stat().st_size)
    if not novels:
        print(f"no novels in {args.novels}", file=sys.stderr)
        return 1
    print(f"machine: {machine()}")
    print(f"inputs: {args.novels} ({len(novels)} novels), best of {args.repeat}, episodes={args.episodes}")
    print("target: 西游记 (2 MB) under 30 s and 1 GB")
    if old:
        print(f"old engine: {args.baseline_ref} (runs alternate with the current engine)")
    header = (f"{'novel':<10} {'MB':>5} {'chars':>8} {'ch':>4} | {'baseline s':>10} {'MB rss':>7} | "
              f"{'full s':>7} {'MB rss':>7} {'kchar/s':>8} | {'eps':>4} {'shots':>6} {'lines':>6} {'cast':>5}"
              + f" | {'cpu s':>6}" + (f" | {'old s':>6} {'new/old':>7} {'old cpu':>7}" if old else ""))
    print(header)
    print("-" * len(header))
    for path in novels:
        base = min((measure("baseline", path, args.episodes) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        fulls: list[dict[str, float]] = []
        olds: list[dict[str, float]] = []
        for _ in range(args.repeat):
            fulls.append(measure("full", path, args.episodes))
            if old:
                olds.append(measure("full", path, args.episodes, root=old))
        full = min(fulls, key=lambda r: r["seconds"])
        extra = ""
        if olds:
            o = min(olds, key=lambda r: r["seconds"])
            extra = f" | {o['seconds']:>6.2f} {full['seconds'] / o['seconds']:>7.2f} {min(r['cpu_seconds'] for r in olds):>7.2f}"
        print(f"{path.stem:<10} {path.stat().st_size / 1e6:>5.2f} {int(full['chars']):>8} {int(full['chapters']):>4} | "
              f"{base['seconds']:>10.2f} {base['peak_rss_mb']:>7.0f} | {full['seconds']:>7.2f} {full['peak_rss_mb']:>7.0f} "
              f"{full['chars'] / full['seconds'] / 1000:>8.0f} | {int(full['episodes']):>4} {int(full['shots']):>6} "
              f"{int(full['lines']):>6} {int(full['characters']):>5} | {min(r['cpu_seconds'] for r in fulls):>6.2f}" + extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
