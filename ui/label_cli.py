"""``reelforge label check FILE`` (and ``label burn``): read back or apply the AIGC labels."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("reelforge.label")


def cmd_check(args: argparse.Namespace) -> int:
    from pipelines.cards import LabelStyle
    from pipelines.label import check_media

    style = LabelStyle(text=args.text)
    worst = 0
    for path in args.files:
        report = check_media(Path(path), visible=not args.metadata_only, style=style, seconds=args.seconds)
        print(report.to_json())
        if not report.ok:
            worst = 1
            missing = []
            if report.implicit is None:
                missing.append("implicit AIGC metadata 隐式标识")
            if report.visible is False:
                missing.append("visible mark 显式标识")
            log.error("%s: missing %s", path, ", ".join(missing))
    return worst


def cmd_burn(args: argparse.Namespace) -> int:
    from pipelines.cards import LabelStyle
    from pipelines.label import label_video

    style = LabelStyle(text=args.text, position=args.position, opacity=args.opacity)
    out = label_video(Path(args.input), Path(args.output), style=style, seconds=args.seconds)
    print(out)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("label", help="AIGC labels: check a file's labels (AI生成标识), or burn the mark in")
    sub = p.add_subparsers(dest="label_command", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("check", help="read the implicit label and look for the visible mark; exit 1 if missing")
    c.add_argument("files", nargs="+")
    c.add_argument("--text", default="AI生成", help="the visible mark's wording")
    c.add_argument("--seconds", type=float, default=2.0, help="opening seconds that must show the mark")
    c.add_argument("--metadata-only", action="store_true", help="only read the metadata")
    c.set_defaults(func=cmd_check)
    b = sub.add_parser("burn", help="re-encode a video with the visible mark and the AIGC metadata")
    b.add_argument("input")
    b.add_argument("output")
    b.add_argument("--text", default="AI生成")
    b.add_argument("--position", default="top-right", choices=["top-left", "top-right", "bottom-left", "bottom-right"])
    b.add_argument("--opacity", type=float, default=0.85)
    b.add_argument("--seconds", type=float, default=None, help="only the opening seconds (default: throughout)")
    b.set_defaults(func=cmd_burn)
