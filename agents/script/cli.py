"""``reelforge script NOVEL -o OUT.json``: the script agent on the command line.

The lead's ``ui/cli.py`` mounts this with :func:`register` and dispatches to :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.base import Cancelled, RunContext
from agents.script.agent import ScriptAgent
from agents.script.base import ScriptInput
from agents.script.export import FORMATS, export, format_for
from core.config import load_config
from core.errors import InputError, ReelForgeError
from core.files import atomic_write_text, check_writable, os_error_message
from core.log import log_traceback, user_log_dir
from core.screenplay import json_schema
from core.usage import UsageStore
from core.workspace import Workspace

log = logging.getLogger(__name__)

HELP = "把小说/IP 改编成分集微短剧剧本 (adapt a novel or IP into an episodic micro-drama screenplay)"


def register(subparsers: Any) -> None:
    """Add the ``script`` subcommand to an argparse subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser("script", help=HELP, description=HELP)
    p.add_argument("source", metavar="NOVEL", nargs="?",
                   help="小说文件 (.txt .epub .docx .md) 或一句话梗概/大纲文本 (a novel file, or a logline/outline as text)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="输出文件 (output file; the format follows the suffix unless --format is given)")
    p.add_argument("--format", choices=FORMATS, default=None, help="输出格式 (output format)")
    p.add_argument("--engine", default="offline",
                   help="offline: 规则引擎，无需模型 (rules, no model); openai: OpenAI 兼容接口; local: 本地模型; "
                        "或已安装插件的名字 (or an installed plug-in's name; reelforge doctor lists them)")
    p.add_argument("--episodes", type=int, default=None, help="集数；不填则改编全书 (episodes; default: the whole novel)")
    p.add_argument("--episode-seconds", type=float, default=90.0, help="每集目标时长（秒）(target seconds per episode)")
    p.add_argument("--title", default=None, help="剧名 (series title)")
    p.add_argument("--hybrid", action="store_true",
                   help="混合模式：规则写剧本，只把拿不准的说话人交给模型 (rules write the screenplay; only doubtful "
                        "speakers go to the LLM engine)")
    p.add_argument("--project", type=Path, default=None,
                   help="项目目录：剧本写入 screenplay.json，用量写入 usage.sqlite (project folder)")
    p.add_argument("--adopt", action="store_true",
                   help="把已有文件的非项目目录用作项目，原有文件保留 (make a non-empty folder the project; its files are kept)")
    p.add_argument("--config", type=Path, default=None, help="配置文件 (config TOML)")
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="LLM 提示词语言 (prompt language)")
    p.add_argument("--base-url", default=None, help="OpenAI 兼容接口地址，覆盖配置 (overrides [llm] base_url)")
    p.add_argument("--model", default=None, help="模型名，覆盖配置 (overrides [llm] model)")
    p.add_argument("--api-key-env", default=None, help="存放 API key 的环境变量名 (environment variable holding the key)")
    p.add_argument("--local-model", default=None, help="本地模型目录或 .gguf 文件 (overrides [llm] local_model_path)")
    p.add_argument("--fallback", choices=("auto", "offline", "none"), default=None,
                   help="模型写不出的层由离线引擎补全并标注 (offline)，或报错停止 (none)；auto: 小于 3B 参数的本地模型用 offline "
                        "(a level the model cannot write: fill it from the offline engine and mark it, or stop; "
                        "auto = offline for local models under 3B parameters)")
    p.add_argument("--concurrency", type=int, default=None, help="LLM 并发请求数 (concurrent LLM requests)")
    p.add_argument("--draft", type=Path, default=None,
                   help="LLM 分层草稿 JSON，可编辑后重跑 (the editable draft of the LLM levels)")
    p.add_argument("--regenerate", action="append", default=[], metavar="LEVEL",
                   help="重新生成某一层：summaries/logline/characters/outline/scenes/lines (repeatable)")
    p.add_argument("--episode", type=int, default=None, help="与 --regenerate 合用：只重做这一集 (only this episode)")
    p.add_argument("--usage", type=Path, default=None, help="用量数据库 (usage.sqlite) when no --project is given")
    p.add_argument("--schema", type=Path, default=None,
                   help="写出剧本的 JSON Schema (write the screenplay JSON Schema to this file; alone, or with a run)")
    p.add_argument("--quiet", action="store_true", help="不显示进度 (no progress)")
    p.set_defaults(func=run)


def _progress(quiet: bool) -> Any:
    last = [-1]

    def show(fraction: float, message: str) -> None:
        pct = int(fraction * 100)
        if quiet or pct == last[0]:
            return
        last[0] = pct
        print(f"\r[{pct:3d}%] {message[:60]:<60}", end="", file=sys.stderr, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code (0 ok, 2 bad input/config/model, 130 stopped).

    An operating-system error (a read-only folder, a full disk) is one line naming the path and
    the cause; its traceback goes to the run's log, whose path is printed.
    """
    try:
        return _run(args)
    except Cancelled as e:
        print(f"\n已停止 / stopped: {e}", file=sys.stderr)
        return 130
    except ReelForgeError as e:
        print(f"\n错误 / error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"提示 / hint: {e.hint}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"\n错误 / error: {os_error_message(e)}", file=sys.stderr)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        log_dir = args.project / "logs" if args.project is not None and (args.project / "project.json").is_file() \
            else user_log_dir()
        path = log_traceback(e, None, log_dir / f"script-error-{stamp}-{os.getpid()}.log")
        if path is not None:
            print(f"详情 / details: {path}", file=sys.stderr)
        return 2


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs(args: argparse.Namespace, output: Path | None) -> None:
    """Refuse an output that is the novel itself, and an output folder we cannot write, before any work."""
    source = Path(args.source).expanduser() if args.source is not None and "\n" not in args.source else None
    if source is not None and source.is_dir():
        raise InputError(f"novel {str(source)!r} is a folder", hint="give one .txt, .epub, .docx or .md file")
    named = [("-o/--output", output), ("--schema", args.schema), ("--draft", args.draft), ("--usage", args.usage)]
    for flag, path in named:
        if path is None or source is None or not source.is_file():
            continue
        if _same_file(path, source) or Path(path).expanduser().resolve() == source.resolve():
            raise InputError(f"{flag} {str(path)!r} is the novel itself; writing it would destroy the novel",
                             hint="choose another output file name")
    if output is not None:
        if output.is_dir():
            raise InputError(f"output {str(output)!r} is a folder", hint="give a file name, e.g. OUT.json")
        check_writable(output.expanduser().absolute().parent, what="screenplay")


def _run(args: argparse.Namespace) -> int:
    if args.schema is not None:
        if args.source is not None:
            _check_outputs(args, None)
        atomic_write_text(args.schema, json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n")
        print(f"  -> {args.schema}")
        if args.source is None:
            return 0
    if args.source is None:
        raise InputError("no novel given", hint="reelforge script NOVEL -o OUT.json")
    cfg = load_config(args.config)
    if args.base_url:
        cfg.llm.base_url = args.base_url
    if args.model:
        cfg.llm.model = args.model
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")
        if not key:
            raise InputError(f"environment variable {args.api_key_env!r} is empty", hint="export it first")
        cfg.llm.api_key = key
    if args.local_model:
        cfg.llm.local_model_path = args.local_model
    if args.concurrency is not None:
        cfg.llm.concurrency = args.concurrency
    if args.fallback is not None:
        cfg.llm.fallback = args.fallback
    output: Path | None = args.output
    if output is None and args.project is None:
        raise InputError("no output given", hint="add -o OUT.json (or .fountain/.md/.docx/.csv/.xlsx) or --project DIR")
    fmt = format_for(output, args.format) if output is not None else "json"
    _check_outputs(args, output)

    novel_file = [Path(args.source)] if "\n" not in args.source and Path(args.source).is_file() else []
    ws = Workspace(args.project).create(adopt=args.adopt, ignore=novel_file) if args.project is not None else None
    # one writer per project: a make (or another script run) on it holds the lock; never write beside it
    with ws.lock() if ws is not None else contextlib.nullcontext():
        return _write_screenplay(args, cfg, output, fmt, ws)


def _write_screenplay(args: argparse.Namespace, cfg: Any, output: Path | None, fmt: str, ws: Workspace | None) -> int:
    usage_path = ws.usage_db if ws is not None else args.usage
    store = UsageStore(usage_path) if usage_path is not None else None
    ctx = RunContext(config=cfg, workspace=ws, usage=store, progress=_progress(args.quiet),
                     cancel=threading.Event())
    if store is not None:
        ctx.run_id = store.start_run(command="reelforge script " + " ".join(sys.argv[2:]), run_id=ctx.run_id)

    draft_path = args.draft
    if draft_path is None and ws is not None and args.engine != "offline":
        draft_path = ws.root / "script_draft.json"
    if args.regenerate:
        if draft_path is None or not Path(draft_path).exists():
            raise InputError("--regenerate needs an existing draft", hint="pass --draft PATH or --project DIR of an earlier LLM run")
        from agents.script.llm.engine import Draft, clear_level

        draft = Draft.load(draft_path)
        for level in args.regenerate:
            clear_level(draft, level, args.episode)
        draft.save(draft_path)

    agent = ScriptAgent(language=args.lang, draft_path=draft_path)
    inp = ScriptInput(source=args.source, episodes=args.episodes, episode_seconds=args.episode_seconds,
                      hybrid=args.hybrid,
                      engine=args.engine, title=args.title)
    if Path(args.source).suffix and Path(args.source).exists():
        inp = replace(inp, source=Path(args.source))
    try:
        result = agent(inp, ctx)
    except KeyboardInterrupt:
        ctx.cancel.set()
        raise Cancelled("interrupted", hint="run the same command again; an LLM draft resumes where it stopped") from None
    finally:
        if store is not None:
            store.close()
    if not args.quiet:
        print(file=sys.stderr)
    written = []
    if output is not None:
        written.append(export(result.output, output, fmt))
    written.extend(result.files)
    series = result.output
    lengths = [sum(s.seconds for s in e.shots()) for e in series.episodes]
    print(f"《{series.title}》: {len(series.episodes)} 集 episodes, {sum(len(e.shots()) for e in series.episodes)} 镜 shots, "
          f"{len(series.characters)} 角色 characters; 每集 {min(lengths, default=0):.0f}-{max(lengths, default=0):.0f} 秒; "
          f"{result.seconds} s ({result.engine})")
    for path in written:
        print(f"  -> {path}")
    for note in result.notes:
        print(f"  ! {note}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m agents.script.cli``) until the lead's CLI mounts the subcommand."""
    from core.log import setup_logging

    parser = argparse.ArgumentParser(prog="reelforge")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    setup_logging("WARNING" if args.quiet else None)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
