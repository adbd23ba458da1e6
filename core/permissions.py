"""Roles and what each may do: one table, one check.

Every action behind the studio (and every face that acts for a named person) calls
:func:`require` with the person and the action's name before it touches anything. The table is
the only place that says who may do what, so a reviewer reads it in one screen:

- ``writer``: adapts novels, edits screenplays and casts;
- ``artist``: changes prompts and shot settings, regenerates shots, re-renders episodes;
- ``reviewer``: approves and rejects shots and episodes;
- ``accountant``: sees, edits and exports the ledger and prepares claims;
- ``admin``: everything, including delivery and approving claims.

Money beyond a project's own spend (invoices, bank references, claims) is ``ledger.*``: only
accountants and admins. Everyone who can open a project sees that project's spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from core.errors import ReelForgeError

Role = Literal["admin", "writer", "artist", "reviewer", "accountant"]
ROLES: tuple[str, ...] = get_args(Role)

ROLE_LABELS: dict[str, str] = {
    "admin": "管理员 admin",
    "writer": "编剧 writer",
    "artist": "分镜/美术 artist",
    "reviewer": "审片/导演 reviewer",
    "accountant": "会计 accountant",
}

# action -> what it is, in words a refusal can quote
ACTIONS: dict[str, str] = {
    "project.view": "open projects, watch shots and episodes, see their state and history",
    "project.make": "adapt a novel and make a project's episodes",
    "project.spend": "see a project's own AI spend",
    "run.stop": "stop a running job",
    "screenplay.edit": "edit a screenplay",
    "cast.edit": "edit a cast",
    "shot.prompt": "change a shot's prompt",
    "shot.settings": "change a shot's generation settings",
    "shot.regenerate": "regenerate a shot",
    "episode.render": "re-render an episode",
    "episode.submit": "submit an episode for review",
    "shot.approve": "approve a shot",
    "shot.reject": "reject a shot",
    "episode.approve": "approve an episode",
    "episode.reject": "reject an episode",
    "episode.deliver": "deliver an episode",
    "episode.export": "export an episode's timeline",
    "ledger.view": "see the ledger (invoices, payments, claims)",
    "ledger.edit": "enter companies, vendors, invoices, payments and usage in the ledger",
    "ledger.export": "export the claim package",
    "claim.prepare": "compute and record a subsidy claim",
    "claim.approve": "approve a recorded subsidy claim",
    "system.doctor": "see what this machine has (GPU, codecs, voices)",
    "users.manage": "add, change and remove accounts",
}

_EVERYONE = frozenset({"project.view", "project.spend", "system.doctor"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "writer": _EVERYONE | {"project.make", "run.stop", "screenplay.edit", "cast.edit", "episode.submit"},
    "artist": _EVERYONE | {"run.stop", "shot.prompt", "shot.settings", "shot.regenerate", "episode.render",
                           "episode.submit", "episode.export"},
    "reviewer": _EVERYONE | {"shot.approve", "shot.reject", "episode.approve", "episode.reject"},
    "accountant": _EVERYONE | {"ledger.view", "ledger.edit", "ledger.export", "claim.prepare"},
}


class AccessDenied(ReelForgeError):
    """A person asked for an action their role does not allow (or is not logged in)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: an account's name and role. ``local``: the single-user studio on loopback
    with no accounts configured (its one user is an admin)."""

    name: str
    role: Role
    local: bool = False

    def label(self) -> str:
        return f"{self.name} ({self.role})"


def check_role(role: str) -> Role:
    """``role`` if it is one of :data:`ROLES`, else an error naming them."""
    if role not in ROLES:
        from core.errors import FieldError

        raise FieldError("role", role, "is not a role", hint=f"use one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def roles_for(action: str) -> tuple[str, ...]:
    """The roles that may do ``action``."""
    _known(action)
    return tuple(r for r in ROLES if action in PERMISSIONS[r])


def allowed(principal: Principal | None, action: str) -> bool:
    _known(action)
    return principal is not None and action in PERMISSIONS.get(principal.role, frozenset())


def require(principal: Principal | None, action: str) -> Principal:
    """``principal`` when their role allows ``action``; otherwise :class:`AccessDenied`.

    An unknown action is a programming error and raises ``ValueError`` (never allowed by
    default)."""
    if principal is None:
        raise AccessDenied("not logged in", hint="log in first")
    if not allowed(principal, action):
        roles = ", ".join(roles_for(action))
        raise AccessDenied(f"{principal.label()} may not {ACTIONS[action]}",
                           hint=f"this needs the role {roles}; an admin can change roles with "
                                f"`reelforge users role {principal.name} ROLE`")
    return principal


def _known(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; add it to core.permissions.ACTIONS and PERMISSIONS")
