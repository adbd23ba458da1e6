"""``reelforge providers list | check NAME | tasks PROJECT``: the generation providers, whether
their keys work (a free call), and a project's task journal (what was paid for, what is running)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("reelforge.providers")


def _config(args: argparse.Namespace) -> Any:
    from core.config import load_config

    return load_config(args.config) if getattr(args, "config", None) else load_config()


def cmd_list(args: argparse.Namespace) -> int:
    from pipelines.providers import catalog
    from pipelines.providers.secrets import get_secret

    rows: list[dict[str, Any]] = []
    for info in catalog(_config(args)):
        keys = {v: get_secret(v) is not None for v in info.env_keys}
        rows.append({"name": info.name, "title": info.title, "kinds": list(info.kinds), "base_url": info.base_url,
                     "keys": keys, "models": [{"name": m.name, "kind": m.kind, "unit": m.unit, "default": m.default}
                                              for m in info.models], "docs": list(info.docs), "checked": info.checked,
                     "available": info.available, "reason": info.reason})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        keyset: dict[str, bool] = r["keys"]
        kinds: list[str] = r["kinds"]
        models: list[dict[str, Any]] = r["models"]
        text = ", ".join(f"{k} {'set' if ok else 'MISSING'}" for k, ok in keyset.items()) or "no key needed"
        print(f"{r['name']:<11} {'/'.join(kinds):<18} {text}")
        for m in models:
            print(f"    {r['name']}:{m['name']}{'  (default ' + m['kind'] + ')' if m['default'] else ''}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pipelines.providers import create

    prov = create(args.name, _config(args))
    try:
        prov.check_auth()
    finally:
        prov.close()
    print(f"{args.name}: the key works ({prov.base_url})")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from pipelines.providers.journal import Journal

    path = Path(args.project) / "providers" / "journal.sqlite"
    if not path.exists():
        print("no provider tasks in this project")
        return 0
    with Journal(args.project) as j:
        for t in j.tasks():
            print(f"{t.job:<40} #{t.attempt + 1} {t.provider}:{t.model:<34} {t.status:<10} {t.task_id} {t.error}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("providers", help="generation providers: list, check a key, a project's tasks")
    sub = p.add_subparsers(dest="providers_command", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("list", help="providers, their models and whether their keys are set")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_list)
    c = sub.add_parser("check", help="check a provider's key with a call that costs nothing")
    c.add_argument("name")
    c.set_defaults(func=cmd_check)
    c = sub.add_parser("tasks", help="the project's task journal: every paid request and its state")
    c.add_argument("project")
    c.set_defaults(func=cmd_tasks)
