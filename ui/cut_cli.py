"""``reelforge cut detect|rough|render|export|silence`` — mounted by ui/cli.py under ``reelforge cut``.

Imports stay inside the commands so ``reelforge cut detect`` starts fast (no torch unless the
neural detector is asked for). Results go to standard output, logs to standard error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("reelforge.cut")


def _check_output(output: str, source: str) -> None:
    """Before the work: the output is a video name we write, not the input, in a folder we can write."""
    from core.files import check_distinct, check_writable
    from core.media import check_video_output

    check_distinct(source, output)
    check_video_output(output)  # the text as typed: a trailing "/" means a folder
    check_writable(Path(output).expanduser().absolute().parent, what="output")


def cmd_detect(args: argparse.Namespace) -> int:
    from core.media import strict_media
    from pipelines.detect import get_detector

    kwargs: dict[str, Any] = {}
    if args.detector == "transnet":
        kwargs["device"] = args.device
        kwargs["fuse"] = not args.network_only
    detector = get_detector(args.detector, **kwargs)
    with strict_media(args.strict):  # a truncated file: an error, not a warning about missing frames
        result = detector.detect(Path(args.video))
    if args.json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        fps = result.fps
        for b in result.boundaries:
            t = float(b.frame / fps)
            print(f"{b.frame:>7d}  {t:9.3f}s  {b.kind:<8s} [{b.start}, {b.end}]")
        log.info("%d boundaries, %d shots, %d frames (%s, %.2fs)", len(result.boundaries), len(result.shots()),
                 result.frames, result.detector, result.seconds)
    return 0


def cmd_rough(args: argparse.Namespace) -> int:
    from agents.cut import rough_cut_project

    out = rough_cut_project(Path(args.project), episode=args.episode, target_seconds=args.seconds,
                            footage=[Path(p) for p in args.footage or []], music=Path(args.music) if args.music else None,
                            render=not args.no_render, burn_subtitles=args.burn_subtitles,
                            review_required=args.review_required)
    print(out.timeline)
    if out.video is not None:
        print(out.video)
    for note in out.notes:
        log.warning("note: %s", note)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from agents.cut import export_project

    path, notes = export_project(Path(args.project), args.format, episode=args.episode,
                                 out=Path(args.output) if args.output else None,
                                 target_root=args.target_root, package=args.package)
    for note in notes:
        log.warning("note: %s", note)
    print(path)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from core.timeline import Timeline
    from pipelines.render import render_timeline

    _check_output(args.output, args.timeline)
    tl = Timeline.load(Path(args.timeline))
    res = render_timeline(tl, Path(args.output), copy=args.copy, label=not args.no_label)
    log.info("%s: %d frames (%s)", res.path, res.frames, res.mode)
    print(res.path)
    return 0


def cmd_silence(args: argparse.Namespace) -> int:
    from core.config import load_config
    from pipelines.silence import SilenceParams, cut_silence

    _check_output(args.output, args.input)
    cfg = load_config(args.config) if getattr(args, "config", None) else load_config()
    whisper = cfg.models.paths.get("whisper", "")  # a local faster-whisper model folder, if configured
    res = cut_silence(Path(args.input), Path(args.output),
                      SilenceParams(threshold_db=args.threshold, min_silence=args.min_silence, margin=args.margin),
                      label=args.label, whisper_model=whisper)
    log.info("kept %d of %d frames in %d pieces", res.frames_kept, res.frames_in, len(res.kept))
    print(res.path)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("detect", help="find shot boundaries (cuts, dissolves, fades) in a video")
    p.add_argument("video")
    p.add_argument("--detector", default="fast",
                   help="fast: our CPU detector (default); transnet: TransNetV2 (GPU when present); "
                        "or an installed plug-in's name (reelforge doctor lists them)")
    p.add_argument("--device", default="auto", help="transnet: auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--network-only", action="store_true",
                   help="transnet: the network's boundaries alone (by default the fast detector's hard cuts "
                        "that the network misses are added)")
    p.add_argument("--json", action="store_true", help='print {"fps", "boundaries": [...]} only')
    p.add_argument("--strict", action="store_true",
                   help="fail on a truncated input (fewer frames than its container lists) instead of warning")
    p.set_defaults(func=cmd_detect)

    p = subparsers.add_parser("rough", help="build (and render) an episode's rough cut from the screenplay")
    p.add_argument("project")
    p.add_argument("--episode", type=int, default=1)
    p.add_argument("--review-required", action=argparse.BooleanOptionalAction, default=None,
                   help="refuse to render while any shot is unapproved in review (default: [review] required)")
    p.add_argument("--seconds", type=float, default=None, help="target length (default: the episode's)")
    p.add_argument("--footage", nargs="*", help="user footage to use instead of generated shots (in shot order)")
    p.add_argument("--music", default=None, help="background music, ducked under dialogue")
    p.add_argument("--no-render", action="store_true", help="only write the timeline")
    p.add_argument("--burn-subtitles", action="store_true", help="burn the subtitles into the picture")
    p.set_defaults(func=cmd_rough)

    p = subparsers.add_parser("export", help="export the episode timeline for an editor")
    p.add_argument("project")
    p.add_argument("--format", required=True, metavar="FORMAT",
                   help="otio, fcpxml (Final Cut / Resolve), fcp7 (Premiere / Resolve), edl or jianying (剪映)")
    p.add_argument("--episode", type=int, default=1)
    p.add_argument("--output", default=None, help="file (or draft folder for jianying)")
    p.add_argument("--target-root", default=None, metavar="PATH",
                   help="the folder on the editing machine that will hold the export (for jianying: 剪映's drafts "
                        "folder), e.g. C:/Users/NAME/Videos/drama or /Users/NAME/Movies/drama; every path in the "
                        "timeline is written as it will be there")
    p.add_argument("--package", nargs="?", const="copy", default=None, choices=["copy", "link"],
                   help="copy (default) or hard-link the media into the export (media/ beside the timeline; "
                        "jianying: inside the draft folder)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("render", help="render a timeline JSON to MP4 (frame-accurate, labelled)")
    p.add_argument("timeline")
    p.add_argument("output")
    p.add_argument("--copy", choices=["auto", "never"], default="auto", help="stream copy when nothing changes")
    p.add_argument("--no-label", action="store_true", help="leave out the visible AI label (footage not AI-made)")
    p.set_defaults(func=cmd_render)

    p = subparsers.add_parser("silence", help="cut silence and dead air out of a video (audio energy)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--threshold", type=float, default=-40.0, help="dBFS below which audio is silent")
    p.add_argument("--min-silence", type=float, default=0.5, help="seconds of silence before cutting")
    p.add_argument("--margin", type=float, default=0.15, help="seconds kept around speech")
    p.add_argument("--label", action="store_true", help="AI-made footage: burn the visible mark and tag it")
    p.set_defaults(func=cmd_silence)
