"""``reelforge models list|convert``: the super-resolution models and their weights.

``list`` shows every model of :data:`models.SR_MODELS` with its scale, licence and whether its
weights are here; ``convert`` converts an official Real-ESRGAN ncnn model to safetensors (by
registry name into the model cache, with the sha256 checks of :func:`models.registry.ensure_official`,
or any ``.param``/``.bin`` pair to a path you name). Mounted by ui/cli.py.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("reelforge.models")


def _cache_dir(args: argparse.Namespace) -> str:
    if args.cache_dir:
        return str(args.cache_dir)
    from core.config import load_config

    config = load_config(args.config) if getattr(args, "config", None) else load_config()
    return config.models.cache_dir


def cmd_list(args: argparse.Namespace) -> int:
    from models.registry import describe_models

    rows = describe_models(_cache_dir(args))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        line = f"{r['name']:<16} x{r['scale']} {r['content']:<11} {r['state']:<22} {r['licence']}"
        print(line + (f"\n{'':<16} get it: {r['install']}" if r["install"] else ""))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    if args.name:
        if args.param or args.out:
            raise argparse.ArgumentTypeError("give --name, or --param and --out, not both")
        from models.registry import ensure_official

        print(ensure_official(args.name, _cache_dir(args)))
        return 0
    if not (args.param and args.out):
        raise argparse.ArgumentTypeError("give --name, or --param and --out")
    from models.ncnn_convert import convert_ncnn, save_safetensors

    converted = convert_ncnn(args.param, args.bin)
    print(save_safetensors(converted, args.out, source=Path(args.param).name))
    return 0


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="super-resolution models: list them, convert official weights")
    sub = models.add_subparsers(dest="models_command", required=True)
    p = sub.add_parser("list", help="every model, its licence and whether its weights are here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--cache-dir", default=None, help="model cache (default: config models.cache_dir)")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("convert", help="convert an official Real-ESRGAN ncnn model to safetensors / 转换官方 ncnn 模型")
    p.add_argument("--name", help="a registry name (e.g. x4plus); converted into the model cache")
    p.add_argument("--param", help="an ncnn .param file (with --out)")
    p.add_argument("--bin", help="the .bin file (default: next to --param)")
    p.add_argument("--out", help="output .safetensors path (with --param)")
    p.add_argument("--cache-dir", default=None, help="model cache (default: config models.cache_dir)")
    p.set_defaults(func=cmd_convert)
