"""The ``reelforge`` command line.

Logs go to standard error; results (paths, JSON) go to standard output. Exit codes: 0 done,
1 a ReelForge error (message and fix on stderr), 2 bad usage, 3 a delivery check failed (only with
``--strict``, or ``qc --strict``), 130 stopped by Ctrl-C, 143 stopped by SIGTERM (the project stays
resumable: run the same command again; its lock is released).

No traceback reaches the console: an operating-system error (a full disk, a read-only folder)
becomes one line naming the path and the cause, any other unexpected error one line too, and the
full traceback goes to the run's log (``PROJECT/logs/`` or ``$REELFORGE_LOG_DIR``), whose path is
printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from core.errors import ReelForgeError
from core.log import log_traceback, setup_logging, user_log_dir

log = logging.getLogger("reelforge")

ASPECTS = {"9:16": (1080, 1920), "16:9": (1920, 1080), "1:1": (1080, 1080), "3:4": (1080, 1440), "4:3": (1440, 1080)}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("reelforge")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0+source"


def parse_size(text: str) -> tuple[int, int]:
    if text in ASPECTS:
        return ASPECTS[text]
    from core.config import check_frame_size
    from core.errors import ConfigError

    w, sep, h = text.lower().partition("x")
    try:
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like 1080x1920 or an aspect {list(ASPECTS)}") from None
    if not sep:
        raise argparse.ArgumentTypeError(f"size {text!r} must be WIDTHxHEIGHT")
    try:
        return check_frame_size(*size)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class Progress:
    """A progress bar on stderr (tqdm), fed with fractions 0..1 and a message."""

    def __init__(self, enabled: bool = True) -> None:
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=1000, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
                            dynamic_ncols=True)
        self._last = ""

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is not None:
            self.bar.n = int(max(self.bar.n, fraction * 1000))
            self.bar.set_postfix_str(message[:60], refresh=False)
            self.bar.refresh()
        elif message != self._last and ("完成" in message or "done" in message.lower()):
            log.info("%3d%% %s", int(fraction * 100), message)
        self._last = message

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- commands --------------------------------------------------------------------------------
def _config(args: argparse.Namespace) -> Any:
    from core.config import load_config

    config = load_config(args.config) if getattr(args, "config", None) else load_config()
    if getattr(args, "review_required", None) is not None:  # --review-required / --no-review-required
        config.review.required = args.review_required
    return config


REVIEW_HELP = ("refuse to assemble an episode while any shot is unapproved in review, naming them "
               "(default: [review] required in the config, off)")


def parse_episodes(text: str) -> tuple[int, int | None]:
    """``--episodes``: ``N`` (the first N episodes) -> (N, None); ``A-B`` (episodes A to B) -> (A, B)."""
    a, sep, b = text.strip().partition("-")
    try:
        first, last = int(a), (int(b) if sep else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--episodes {text!r} must be a count (3) or a range (4-10)") from None
    if first < 1 or (last is not None and last < first):
        raise argparse.ArgumentTypeError(f"--episodes {text!r}: a count must be at least 1, a range A-B needs 1 <= A <= B")
    return first, last


def _executor(args: argparse.Namespace, config: Any) -> Any:
    """``--ray auto|ADDRESS`` (else the config's ``[cluster] address``; empty: this process)."""
    from agents.executors import executor_for

    return executor_for(getattr(args, "ray", None), config)


RAY_HELP = ("run the tasks on a Ray cluster: auto (the cluster this machine belongs to, else a local one; "
            "RAY_TMPDIR honoured) or its address (HOST:6379); needs reelforge[ray] and a project folder "
            "every node reaches at the same path (default: [cluster] address in the config, this process)")


def cmd_make(args: argparse.Namespace) -> int:
    from agents.studio import Studio, StudioSettings

    config = _config(args)
    count, last = args.episodes if args.episodes is not None else (None, None)
    span = (count, last) if count is not None and last is not None else None
    overrides: dict[str, Any] = {"episodes": last if span else count, "episode_seconds": args.episode_seconds,
                                 "script_engine": args.engine, "title": args.title, "tts": args.tts,
                                 "fps": args.fps, "enhance_scale": args.enhance, "platform": args.platform,
                                 "qc": False if args.no_qc else None, "image": args.image,
                                 "video": args.video, "voice": args.voice, "budget": args.budget}
    if args.size:
        overrides["width"], overrides["height"] = args.size
    project = Path(args.project) if args.project else Path(config.workspace.root).expanduser() / Path(args.novel).stem
    settings = StudioSettings.from_config(config, **overrides)
    if args.all_episodes:
        settings.episodes = None
    if args.dry_run:
        for quote in Studio(project, config).quote_make(args.novel, settings, span):
            print(quote.table())
        return 0
    progress = Progress(not args.quiet)
    executor = _executor(args, config)
    try:
        result = Studio(project, config, progress=progress, executor=executor).make(
            args.novel, settings, command=" ".join(sys.argv[1:]), span=span, adopt=args.adopt)
    finally:
        progress.close()
        executor.close()
    if result.executor != "local":
        log.info("tasks on the %s executor: %s", result.executor, result.tasks)
    for stage in result.stages:
        log.info("stage %-14s %-7s %6.1fs %s %s", stage.stage, stage.status, stage.seconds, stage.engine, stage.detail)
    for note in result.notes:
        log.warning("note: %s", note)
    for srt in result.subtitles:
        log.info("subtitles: %s", srt)
    for report in result.qc:
        _log_qc(report)
    for path in result.finals:
        print(path)
    if args.strict and result.qc_failed:
        print(f"reelforge: delivery checks failed for {len(result.qc_failed)} episode(s) (--strict)", file=sys.stderr)
        return STRICT_FAILED
    return 0


STRICT_FAILED = 3


def _log_qc(report: Any) -> None:
    marks = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
    log.info("QC episode %d (%s): %s — %s", report.episode, report.platform, "passed" if report.passed else "FAILED",
             report.html_path or "")
    for c in report.checks:
        (log.warning if c.status == "fail" else log.info)("  %s %-16s %s", marks.get(str(c.status), c.status), c.id, c.detail)
    for fix in report.fixes:
        log.info("  fixed: %s: %s", fix.get("check"), fix.get("action"))


def cmd_qc(args: argparse.Namespace) -> int:
    from agents.base import RunContext
    from agents.qc import QCAgent, QCInput
    from core.workspace import Workspace

    ws = Workspace(args.project).require()
    config = _config(args)
    episodes = [args.episode]
    if args.all_episodes:
        episodes = sorted(int(p.stem[2:]) for p in ws.out_dir.glob("ep[0-9][0-9].mp4"))
    reports = []
    for n in episodes:
        ctx = RunContext(config=config, workspace=ws)
        reports.append(QCAgent()(QCInput(ws.root, n, args.platform, write=not args.no_report), ctx).output)
    if args.json:
        out: Any = reports[0].contract() if len(reports) == 1 and not args.all_episodes else [r.contract() for r in reports]
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for r in reports:
            _log_qc(r)
            print(r.html_path or r.file)
    if args.strict and any(not r.passed for r in reports):
        return STRICT_FAILED
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from agents.studio import Studio
    from agents.synth import review_shot
    from core.screenplay import Series

    config = _config(args)
    if args.engine:
        config.synth.engine = args.engine
    if args.image_model:
        config.models.image_model = args.image_model
    if args.video_model:
        config.models.video_model = args.video_model
    if args.steps:
        config.synth.steps = args.steps
    if args.size:
        config.synth.size = f"{args.size[0]}x{args.size[1]}"
    studio = Studio(args.project, config, progress=Progress(not args.quiet))
    settings = studio.settings()
    if args.tts:
        settings.tts = args.tts
    if args.frame_size:
        settings.width, settings.height = args.frame_size
    for key in ("image", "video", "voice", "budget"):
        if getattr(args, key, None) is not None:
            setattr(settings, key, getattr(args, key))
    reviews = [("approve", s, None) for s in args.approve] + [("regenerate", s, None) for s in args.regenerate]
    for item in args.edit_prompt:
        shot, sep, text = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--edit-prompt {item!r} must look like SHOT=新的画面描述")
        reviews.append(("prompt", shot, text))
    settings_by_shot: dict[str, dict[str, str]] = {}
    for item in args.shot_setting:
        shot, sep, rest = item.partition(":")
        key, sep2, value = rest.partition("=")
        if not sep or not sep2:
            raise argparse.ArgumentTypeError(f"--shot-setting {item!r} must look like SHOT:steps=8")
        settings_by_shot.setdefault(shot, {})[key] = value
    sheet_reviews = [("approve", n) for n in args.approve_sheet] + [("regenerate", n) for n in args.regenerate_sheet]
    if sheet_reviews:
        from agents.synth.job import safe_file_name
        from agents.synth.review import review_sheet
        from core.paths import safe_join

        sheet_dir = studio.ws.require().synth_dir(args.episode).parent / "characters"
        for action, name in sheet_reviews:
            rec = review_sheet(sheet_dir, name, action, png=safe_join(sheet_dir, f"{safe_file_name(name)}.png"))
            log.info("character sheet %s: %s -> %s", name, action, rec["status"])
    if reviews or settings_by_shot:
        folder = studio.ws.require().synth_dir(args.episode)
        for shot, values in settings_by_shot.items():
            entry = review_shot(folder, shot, "set", settings=values)
            log.info("shot %s: settings %s", shot, entry.settings.to_json())
        for action, shot, text in reviews:
            entry = review_shot(folder, shot, action, text)
            log.info("shot %s: %s -> %s", shot, action, entry.status)
    if reviews or settings_by_shot or sheet_reviews:
        return 0
    studio.ws.require()
    series = Series.load(studio.ws.screenplay_path)
    numbers = [e.number for e in series.episodes] if args.all_episodes else [args.episode]
    if args.dry_run:
        for n in numbers:
            print(studio.quote(n, settings).table())
        return 0
    failed = 0
    for n in numbers:
        # the shot cache decides what is re-made; the stage record does not know the synth options
        studio.ws.invalidate(f"synth:ep{n:02d}")
        try:
            render = studio.synth(n, settings)
        except Exception as e:  # noqa: BLE001 - a batch reports every episode, then fails
            if not args.all_episodes or not isinstance(e, ReelForgeError):
                raise
            failed += 1
            log.error("episode %d: failed: %s", n, e)
            print(f"ep{n:02d}\tfailed\t{e}")
            continue
        path = studio.ws.synth_dir(n) / "render.json"
        print(path if not args.all_episodes else f"ep{n:02d}\tdone\t{path}")
        log.info("episode %d: %d shots, %d frames, engine %s, %s LUFS, %d notes, %d shots awaiting review",
                 render.episode, len(render.shots), render.total_frames, render.engine, render.loudness_lufs,
                 len(render.notes), len(render.unapproved()))
        pending = render.unapproved()
        if config.review.required and pending:
            log.warning("episode %d: review is required before the cut; awaiting approval: %s", render.episode,
                        ", ".join(pending))
    return 1 if failed else 0


def cmd_cut_assemble(args: argparse.Namespace) -> int:
    from agents.studio import Studio

    out = Studio(args.project, _config(args), progress=Progress(not args.quiet)).cut(args.episode)
    print(out.video)
    print(out.srt)
    return 0


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts")


def _enhance_options(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    rife = str(Path(args.rife_weights).resolve()) if args.rife_weights else None
    return {"scale": args.scale, "method": args.model, "crf": args.crf, "device": args.device or config.device,
            "precision": args.precision, "tile": args.tile, "batch": args.batch, "compile": args.compile,
            "denoise": args.denoise, "denoise_strength": args.denoise_strength, "fps": args.fps,
            "interpolation": args.interpolation, "rife_weights": rife,
            "strict": args.strict}


def cmd_enhance(args: argparse.Namespace) -> int:
    from agents.base import RunContext
    from agents.enhance import EnhanceAgent, EnhanceInput

    config = _config(args)
    options = _enhance_options(args, config)
    if Path(args.input).is_dir():
        return _enhance_many(args, config, options)
    if args.ray:
        raise ReelForgeError("--ray works on a folder of files", hint="reelforge enhance DIR_IN DIR_OUT --ray auto")
    progress = Progress(not args.quiet)
    ctx = RunContext(config=config, progress=progress)
    try:
        res = EnhanceAgent()(EnhanceInput(Path(args.input), Path(args.output), **options), ctx)
    finally:
        progress.close()
    out = res.output
    log.info("%s %s -> %dx%d (%d frames) with %s in %ss", out.kind, args.input, out.size[0], out.size[1], out.frames,
             out.method, res.seconds)
    print(out.path)
    return 0


def _enhance_many(args: argparse.Namespace, config: Any, options: dict[str, Any]) -> int:
    """``enhance DIR_IN DIR_OUT``: every image and video of DIR_IN, one task each (``--ray``: across a
    cluster, one model worker per GPU). A file finished earlier with the same settings is kept."""
    from agents.enhance import EnhanceInput
    from agents.plan import enhance_plan
    from core.errors import InputError
    from core.executor import TaskResult
    from pipelines.upscale import IMAGE_SUFFIXES

    src_dir, dst_dir = Path(args.input), Path(args.output)
    media = (*sorted(IMAGE_SUFFIXES), *VIDEO_SUFFIXES)
    files = sorted(p for p in src_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in media)
    if not files:
        raise InputError(f"no image or video in {str(src_dir)!r}", hint=f"put files ending in {', '.join(media)} there")
    if dst_dir.exists() and not dst_dir.is_dir():
        raise InputError(f"{str(dst_dir)!r} is a file; with a folder as input the output is a folder too",
                         hint="reelforge enhance DIR_IN DIR_OUT")
    if dst_dir.resolve() == src_dir.resolve():
        raise InputError("the output folder is the input folder", hint="choose another output folder; the inputs are kept")
    dst_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(p, dst_dir / p.name) for p in files]
    EnhanceInput(pairs[0][0], pairs[0][1], **options).check()  # bad settings fail before any work
    executor = _executor(args, config)
    progress = Progress(not args.quiet)
    done: list[TaskResult] = []
    try:
        plan = enhance_plan(pairs, options, config, record_dir=dst_dir / ".reelforge", run_id="enhance",
                            remote=executor.remote)
        executor.run(plan, on_result=done.append, progress=progress)
    finally:
        progress.close()
        executor.close()
    reused = sum(1 for r in done if r.status == "reused")
    log.info("enhance: %d file(s) on the %s executor, %d made, %d kept from before", len(done), executor.name,
             len(done) - reused, reused)
    for r in done:
        for note in r.output.notes if r.output else []:
            log.warning("note: %s", note)
    for _, dst in pairs:
        print(dst)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from core.log import run_log, user_log_dir
    from ui.app import launch

    config = _config(args)
    server_log = user_log_dir() / "studio.log"
    with run_log(server_log) as handler:  # the console shows one line per error; the full traceback goes here
        if handler is not None:
            log.info("studio log with full tracebacks: %s", server_log)
        launch(host=args.host, port=args.port, sample=args.sample, workspace=args.workspace, config=config)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ui.doctor import doctor_report, format_report

    report = doctor_report(_config(args))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    return 0


# --- parser ----------------------------------------------------------------------------------
def _mount_optional(sub: Any, module: str) -> None:
    """Mount a subcommand that lives in its own package (script, ledger, cut tools)."""
    try:
        mod = __import__(module, fromlist=["register"])
    except ImportError as e:
        if e.name and not module.startswith(e.name) and e.name != module:
            raise
        return
    mod.register(sub)


def _provider_flags(p: argparse.ArgumentParser, dry_run: bool = True) -> None:
    """--image/--video/--voice PROVIDER:MODEL, --budget YUAN (and --dry-run) on make and synth."""
    p.add_argument("--image", default=None, metavar="PROVIDER:MODEL",
                   help="keyframes and character sheets from a provider, e.g. ark:doubao-seedream-4-0-250828 "
                        "(reelforge providers list)")
    p.add_argument("--video", default=None, metavar="PROVIDER:MODEL",
                   help="image-to-video of each keyframe, e.g. kling:kling-v2-1")
    p.add_argument("--voice", default=None, metavar="PROVIDER:MODEL",
                   help="character voices from a provider, e.g. minimax:speech-02-hd")
    p.add_argument("--budget", default=None, metavar="YUAN",
                   help="stop before the call that would take the run over this many yuan")
    if dry_run:
        p.add_argument("--dry-run", action="store_true",
                       help="print the quote per provider and model and stop (nothing billable is sent)")


def build_parser() -> argparse.ArgumentParser:
    from pipelines.qc.platforms import PLATFORMS

    platform_names = tuple(PLATFORMS)
    parser = argparse.ArgumentParser(
        prog="reelforge",
        description="ReelForge 影锻: AI short-drama studio — script, synth, cut, enhance, ledger.",
    )
    parser.add_argument("--version", action="version", version=f"reelforge {_version()}")
    parser.add_argument("--config", help="config TOML file (default: $REELFORGE_CONFIG, ~/.config/reelforge/config.toml)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("make", help="novel -> episode(s): script, synth, cut (and enhance)")
    p.add_argument("novel", help="the novel: a TXT file (UTF-8, GB18030, UTF-16)")
    p.add_argument("--project", help="project folder (default: WORKSPACE/<novel name>)")
    p.add_argument("--episodes", type=parse_episodes, default=None, metavar="N|A-B",
                   help="the first N episodes (default 1), or episodes A to B (e.g. 4-10)")
    p.add_argument("--all-episodes", action="store_true", help="adapt and make the whole novel")
    p.add_argument("--episode-seconds", type=float, default=None, help="target length of an episode (default 90)")
    p.add_argument("--engine", default=None, help="script engine: offline (default), openai, local")
    p.add_argument("--title", default=None, help="series title (default: from the novel)")
    p.add_argument("--size", type=parse_size, default=None, help="WIDTHxHEIGHT or 9:16 (default), 16:9, 1:1")
    p.add_argument("--fps", default=None, help='frame rate, e.g. 25 (default) or "30000/1001"')
    p.add_argument("--tts", default=None, help="voice engine: auto (default), espeak-ng, espeakng-loader, silence")
    p.add_argument("--enhance", type=float, default=None, metavar="SCALE", help="also upscale the episode (e.g. 2)")
    p.add_argument("--adopt", action="store_true",
                   help="make an existing non-empty folder the project (its files are kept, never overwritten)")
    p.add_argument("--platform", default=None, choices=platform_names,
                   help="the platform the delivery checks hold each episode to (default douyin)")
    p.add_argument("--no-qc", action="store_true", help="skip the delivery checks and their fixes")
    p.add_argument("--strict", action="store_true", help="exit with code 3 when a delivery check fails")
    _provider_flags(p)
    p.add_argument("--review-required", action=argparse.BooleanOptionalAction, default=None, help=REVIEW_HELP)
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS", help=RAY_HELP)
    p.set_defaults(func=cmd_make)

    _mount_optional(sub, "agents.script.cli")

    p = sub.add_parser("synth", help="render an episode's shots: keyframes or animatic, motion, voices, music")
    p.add_argument("project")
    p.add_argument("--episode", type=int, default=1)
    p.add_argument("--all-episodes", action="store_true", help="every episode of the screenplay, a status line each")
    p.add_argument("--engine", default=None,
                   help="pictures: animatic (CPU cards), diffusers (a local image model) or a plug-in picture "
                        "engine; auto (default) picks by config")
    p.add_argument("--image-model", default=None, help="a diffusers folder or .safetensors file for keyframes")
    p.add_argument("--video-model", default=None, help="a diffusers image-to-video folder (SVD, CogVideoX-I2V...)")
    p.add_argument("--tts", default=None, help="voice engine: auto, espeak-ng, espeakng-loader, piper, http, silence")
    p.add_argument("--size", type=parse_size, default=None,
                   help="keyframe generation size WxH (default: the model's native size fitted to the frame)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the pipeline's own)")
    p.add_argument("--frame-size", type=parse_size, default=None, help="output frame size (default: the project's)")
    p.add_argument("--dry-run", action="store_true", help="print the quote (GPU seconds, API cost) and stop")
    _provider_flags(p, dry_run=False)
    p.add_argument("--approve", action="append", default=[], metavar="SHOT", help="review: approve a shot")
    p.add_argument("--regenerate", action="append", default=[], metavar="SHOT", help="review: new seed next run")
    p.add_argument("--edit-prompt", action="append", default=[], metavar="SHOT=PROMPT", help="review: new prompt")
    p.add_argument("--approve-sheet", action="append", default=[], metavar="CHARACTER",
                   help="review: approve a character's reference sheet (providers)")
    p.add_argument("--regenerate-sheet", action="append", default=[], metavar="CHARACTER",
                   help="review: make a character's reference sheet again, new seed, next run")
    p.add_argument("--review-required", action=argparse.BooleanOptionalAction, default=None,
                   help="report the shots the cut will wait for (" + REVIEW_HELP + ")")
    p.add_argument("--shot-setting", action="append", default=[], metavar="SHOT:KEY=VALUE",
                   help="one shot's own seed, steps, guidance, scheduler or negative_prompt")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("cut", help="assemble, detect, rough-cut, export")
    cut_sub = p.add_subparsers(dest="cut_command", metavar="ACTION")
    cut_sub.required = True
    c = cut_sub.add_parser("assemble", help="join an episode's shots into out/epNN.mp4 + .srt")
    c.add_argument("project")
    c.add_argument("--episode", type=int, default=1)
    c.add_argument("--review-required", action=argparse.BooleanOptionalAction, default=None, help=REVIEW_HELP)
    c.set_defaults(func=cmd_cut_assemble)
    _mount_optional(cut_sub, "ui.cut_cli")

    p = sub.add_parser("enhance", help="upscale an image or a video (or every file of a folder)")
    p.add_argument("input", help="an image, a video, or a folder of them")
    p.add_argument("output", help="the output file (a folder when the input is one)")
    p.add_argument("--scale", type=float, default=2.0, help="2, 3 or 4 (any factor with --model classic)")
    p.add_argument("--model", "--method", dest="model", default="auto",
                   help="auto (by content), animevideov3, x4plus, x4plus-anime, rf-x2, rf-x4, classic, "
                        "or an installed plug-in model (reelforge doctor lists them)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="auto", help="auto (fp16 on GPU, fp32 on CPU), fp32, bf16, fp16, int8 (CPU, animevideov3)")
    p.add_argument("--tile", type=int, default=0, help="tile side in input pixels for large frames (0: whole)")
    p.add_argument("--batch", type=int, default=0, help="frames per batch (0: 1 on CPU, 8 on GPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network (default: on for videos on a GPU)")
    p.add_argument("--denoise", action="store_true", help="temporal denoise + deblock before upscaling")
    p.add_argument("--denoise-strength", type=float, default=1.0)
    p.add_argument("--fps", default=None, help='convert the frame rate, e.g. 50 or "60000/1001" (videos)')
    p.add_argument("--interpolation", default="flow", choices=["flow", "rife"],
                   help="flow: optical flow, no weights; rife: a RIFE network from --rife-weights")
    p.add_argument("--rife-weights", default=None, help="path to RIFE weights (flownet.pkl)")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS", help="with a folder: " + RAY_HELP)
    p.add_argument("--strict", action="store_true",
                   help="fail on a truncated input (fewer frames than its container lists) instead of warning")
    p.set_defaults(func=cmd_enhance)

    p = sub.add_parser("qc", help="measure a delivered episode: loudness, speech, picture, label, faces, format")
    p.add_argument("project")
    p.add_argument("--episode", type=int, default=1)
    p.add_argument("--all-episodes", action="store_true", help="every out/epNN.mp4 of the project")
    p.add_argument("--platform", default="douyin", choices=platform_names)
    p.add_argument("--json", action="store_true", help="print the report as JSON on standard output")
    p.add_argument("--strict", action="store_true", help="exit with code 3 when a check fails")
    p.add_argument("--no-report", action="store_true", help="do not write epNN.qc.json / .qc.html beside the episode")
    p.set_defaults(func=cmd_qc)

    p = sub.add_parser("ui", help="start the studio in the browser (Gradio, 127.0.0.1)",
                       description="On 127.0.0.1 without accounts: single-user. With accounts (reelforge users add): "
                                   "login required. Any other address needs accounts.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 needs accounts: reelforge users add)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--workspace", default=None, help="folder holding the projects")
    p.add_argument("--sample", action="store_true", help="open with the sample project filled in")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("doctor", help="what this machine has: GPU, codecs, fonts, voices, models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    _mount_optional(sub, "ledger.cli")
    _mount_optional(sub, "ui.label_cli")
    _mount_optional(sub, "ui.models_cli")
    _mount_optional(sub, "ui.users_cli")
    _mount_optional(sub, "ui.providers_cli")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a timeout, a service manager): unwinds like Ctrl-C, so locks and manifests are closed."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error_log(args: argparse.Namespace) -> Path:
    """Where a failure's traceback goes: the project's logs/ when the command has a project, else the user's."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"error-{stamp}-{os.getpid()}.log"
    project = getattr(args, "project", None)
    if project and (Path(project) / "project.json").is_file():
        return Path(project) / "logs" / name
    return user_log_dir() / f"{getattr(args, 'command', 'reelforge')}-{name}"


def report_failure(e: BaseException, args: argparse.Namespace, prog: str = "reelforge") -> None:
    """One line (two with the log's path) for an error that is not a ReelForgeError; the traceback to the log."""
    from core.files import os_error_message

    if isinstance(e, OSError):
        print(f"{prog}: error: {os_error_message(e)}", file=sys.stderr)
    else:
        print(f"{prog}: internal error: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
    path = log_traceback(e, None, _error_log(args))
    if path is not None:
        print(f"{prog}: details: {path}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with _sigterm_unwinds():
            return func(args)
    except Terminated:
        print("reelforge: terminated. The project is kept; run the same command again to resume.", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"reelforge: stopped. {_resume_hint(args)}", file=sys.stderr)
        return 130
    except ReelForgeError as e:
        if type(e).__name__ == "Cancelled":
            print(f"reelforge: {e}", file=sys.stderr)
            return 130
        print(f"reelforge: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"reelforge: fix: {e.hint}", file=sys.stderr)
        if getattr(e, "log_path", None):
            print(f"reelforge: details: {e.log_path}", file=sys.stderr)  # type: ignore[attr-defined]
        log.debug("details", exc_info=True)
        return 1
    except argparse.ArgumentTypeError as e:
        print(f"reelforge: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback on the console
        report_failure(e, args)
        return 1


def _resume_hint(args: argparse.Namespace) -> str:
    if getattr(args, "project", None) or getattr(args, "command", "") == "make":
        return "The project is kept; run the same command again to resume."
    return "Nothing was written under the output's name."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
