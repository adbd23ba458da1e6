"""``reelforge users``: the studio's accounts (add, list, passwd, role, remove).

Accounts live in one user-level file (``[server] users_file``, default
``~/.config/reelforge/users.json``, mode 0600). A running studio sees changes at once: a
removed account or a new password ends that account's sessions; a new role applies to the
next action.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from core.errors import InputError
from core.permissions import ROLE_LABELS, ROLES


def _store(args: argparse.Namespace) -> Any:
    from core.accounts import UserStore
    from ui.cli import _config

    return UserStore(_config(args).server.users_file or None)


def _password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InputError("no password on standard input", hint=f"echo PASSWORD | reelforge users ... {name} "
                                                                   "--password-stdin")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError("standard input is not a terminal, so the password cannot be asked for",
                         hint="pipe it in with --password-stdin")
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ", hint="run the command again")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    store = _store(args)
    from core.accounts import check_password, check_username
    from core.permissions import check_role

    check_username(args.name)  # before asking for a password
    check_role(args.role)
    password = check_password(_password(args, args.name))
    account = store.add(args.name, args.role, password)
    print(f"added {account.name} ({account.role}) to {store.path}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    accounts = store.accounts()
    if args.json:
        print(json.dumps([{"name": a.name, "role": a.role, "created_at": a.created_at,
                           "password_changed_at": a.changed_at} for a in accounts], ensure_ascii=False, indent=2))
        return 0
    if not accounts:
        print(f"no accounts in {store.path}; add one: reelforge users add NAME --role admin", file=sys.stderr)
        return 0
    width = max(len(a.name) for a in accounts)
    for a in accounts:
        print(f"{a.name:<{width}}  {a.role:<10}  created {a.created_at}  password set {a.changed_at}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    store = _store(args)
    store.account(args.name)  # no such account: say so before asking for a password
    from core.accounts import check_password

    password = check_password(_password(args, args.name))
    store.set_password(args.name, password)
    print(f"password of {args.name} changed; their open sessions have ended", file=sys.stderr)
    return 0


def cmd_role(args: argparse.Namespace) -> int:
    account = _store(args).set_role(args.name, args.role)
    print(f"{account.name} is now {account.role}", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    _store(args).remove(args.name)
    print(f"removed {args.name}; their open sessions have ended", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    roles = ", ".join(f"{r} ({ROLE_LABELS[r]})" for r in ROLES)
    p = sub.add_parser("users", help="studio accounts: add, list, passwd, role, remove",
                       description=f"Accounts for the studio. Roles: {roles}.")
    users = p.add_subparsers(dest="users_command", metavar="ACTION")
    users.required = True

    a = users.add_parser("add", help="add an account (asks for its password)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    a.set_defaults(func=cmd_add)

    a = users.add_parser("list", help="list the accounts and their roles")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_list)

    a = users.add_parser("passwd", help="set an account's password (ends its sessions)")
    a.add_argument("name")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    a.set_defaults(func=cmd_passwd)

    a = users.add_parser("role", help="change an account's role")
    a.add_argument("name")
    a.add_argument("role", choices=ROLES)
    a.set_defaults(func=cmd_role)

    a = users.add_parser("remove", help="remove an account (ends its sessions)")
    a.add_argument("name")
    a.set_defaults(func=cmd_remove)
