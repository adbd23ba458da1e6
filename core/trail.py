"""The approval trail: who did what to a project, when, and to which exact content.

``PROJECT/trail.jsonl`` holds one JSON object a line, appended under an exclusive lock in a
single write and never rewritten. Each entry names the person and their role, the action
(the names of :mod:`core.permissions`), the subject (``ep01``, ``ep01/s003``, ``screenplay``),
the sha256 of the content it concerned (the clip a reviewer approved, the video that was
delivered) and ``prev``, the sha256 of the line before it, so an edited or deleted line shows
up in :meth:`Trail.verify`.

An episode's review state is derived from the trail, never stored beside it::

    draft --submit--> in_review --approve--> approved --deliver--> delivered
      ^                  |  reject               | reject
      +------------------+-----------------------+
      +-- reopen: a shot, prompt or the screenplay changed after submission (any state)

:meth:`Trail.transition` checks the move against the current state inside the lock, so two
reviewers cannot both approve from a stale page.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from core.errors import InputError, ReelForgeError
from core.permissions import Principal, require

log = logging.getLogger(__name__)

TRAIL_FILE = "trail.jsonl"

EpisodeState = Literal["draft", "in_review", "approved", "delivered"]
STATES: tuple[str, ...] = get_args(EpisodeState)
STATE_LABELS: dict[str, str] = {"draft": "草稿 Draft", "in_review": "审核中 In review",
                                "approved": "已通过 Approved", "delivered": "已交付 Delivered"}

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "episode.submit": (frozenset({"draft"}), "in_review"),
    "episode.approve": (frozenset({"in_review"}), "approved"),
    "episode.reject": (frozenset({"in_review", "approved"}), "draft"),
    "episode.deliver": (frozenset({"approved"}), "delivered"),
}
_DONE = {"submit": "submitted", "approve": "approved", "reject": "rejected", "deliver": "delivered"}
REOPEN = "episode.reopen"  # recorded on its own when content changes after submission
# actions that change what an episode shows: after submission they send it back to draft
CONTENT_ACTIONS = frozenset({"shot.prompt", "shot.settings", "shot.regenerate", "shot.reject", "episode.render",
                             "screenplay.edit", "cast.edit"})


class TrailError(ReelForgeError):
    """The trail file is damaged, or a state change is not possible from the current state."""


@dataclass(frozen=True, slots=True)
class TrailEntry:
    seq: int
    at: str  # UTC, ISO 8601
    who: str
    role: str
    action: str
    subject: str
    episode: int | None = None
    hashes: dict[str, str] = field(default_factory=dict)  # what it concerned: name -> sha256
    note: str = ""
    state_from: str | None = None
    state_to: str | None = None
    prev: str = ""  # sha256 of the previous line ("" for the first)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "at": self.at, "who": self.who, "role": self.role,
                               "action": self.action, "subject": self.subject}
        if self.episode is not None:
            out["episode"] = self.episode
        if self.hashes:
            out["hashes"] = dict(sorted(self.hashes.items()))
        if self.note:
            out["note"] = self.note
        if self.state_to is not None:
            out["state"] = {"from": self.state_from, "to": self.state_to}
        out["prev"] = self.prev
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> TrailEntry:
        try:
            state = data.get("state") or {}
            episode = data.get("episode")
            return cls(seq=int(data["seq"]), at=str(data["at"]), who=str(data["who"]), role=str(data["role"]),
                       action=str(data["action"]), subject=str(data["subject"]),
                       episode=int(episode) if episode is not None else None,
                       hashes={str(k): str(v) for k, v in (data.get("hashes") or {}).items()},
                       note=str(data.get("note", "")), state_from=state.get("from"), state_to=state.get("to"),
                       prev=str(data.get("prev", "")))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise TrailError(f"{where} is not a trail entry: {e}", hint="restore trail.jsonl from a backup") from e


@dataclass(frozen=True, slots=True)
class EpisodeStatus:
    episode: int
    state: str
    history: tuple[TrailEntry, ...]  # every state change, oldest first
    approved_hashes: dict[str, str]  # what the last approval (or delivery) pinned

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def episode_subject(episode: int, shot: str | None = None) -> str:
    return f"ep{int(episode):02d}" + (f"/{shot}" if shot else "")


class Trail:
    """One project's trail file."""

    def __init__(self, project_root: str | os.PathLike[str]) -> None:
        self.root = Path(project_root)
        self.path = self.root / TRAIL_FILE

    # --- reading ------------------------------------------------------------------------------
    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return data.splitlines(keepends=True)

    def entries(self, episode: int | None = None) -> list[TrailEntry]:
        out = []
        for i, line in enumerate(self._lines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise TrailError(f"{self.path}:{i} is not JSON: {e}", hint="restore trail.jsonl from a backup") from e
            entry = TrailEntry.from_json(data, f"{self.path}:{i}")
            if episode is None or entry.episode == episode:
                out.append(entry)
        return out

    def verify(self) -> list[str]:
        """Problems with the file: a line whose ``prev`` does not match the line before it (a
        line was edited, inserted or removed), a sequence gap, a torn last line. Empty: intact."""
        problems = []
        prev, expected = "", 1
        for i, line in enumerate(self._lines(), 1):
            if not line.endswith(b"\n"):
                problems.append(f"line {i} is incomplete (a write was interrupted)")
            try:
                entry = TrailEntry.from_json(json.loads(line), f"line {i}")
            except (json.JSONDecodeError, TrailError) as e:
                problems.append(f"line {i}: {e}")
                prev = hashlib.sha256(line.rstrip(b"\n")).hexdigest()
                continue
            if entry.prev != prev:
                problems.append(f"line {i} (seq {entry.seq}) does not follow the line before it")
            if entry.seq != expected:
                problems.append(f"line {i} has seq {entry.seq}, expected {expected}")
            expected = entry.seq + 1
            prev = hashlib.sha256(line.rstrip(b"\n")).hexdigest()
        return problems

    def episode_status(self, episode: int) -> EpisodeStatus:
        return _status(episode, self.entries())

    def states(self) -> dict[int, EpisodeStatus]:
        """Every episode the trail mentions, with its state."""
        entries = self.entries()
        numbers = sorted({e.episode for e in entries if e.episode is not None})
        return {n: _status(n, entries) for n in numbers}

    # --- writing -----------------------------------------------------------------------------
    def record(self, principal: Principal, action: str, subject: str, *, episode: int | None = None,
               files: Mapping[str, str | os.PathLike[str]] | None = None,
               hashes: Mapping[str, str] | None = None, note: str = "") -> TrailEntry:
        """Append one entry (``principal`` must be allowed ``action``). ``files`` are hashed
        here; ``hashes`` are given (a prompt's text hash, a clip that was replaced). A content
        change after submission also sends the episode (or, for a screenplay or cast edit,
        every submitted episode) back to draft, recorded as its own entry."""
        require(principal, action)
        if action in TRANSITIONS:
            raise ValueError(f"{action} changes an episode's state: use Trail.transition")
        digests = dict(hashes or {})
        for name, path in (files or {}).items():
            if Path(path).is_file():
                digests[name] = sha256_of(path)
        with self._locked() as append:
            entry = append(principal, action, subject, episode, digests, note, None, None)
            if action in CONTENT_ACTIONS:
                current = self.entries()
                targets = [episode] if episode is not None else sorted(
                    {e.episode for e in current if e.episode is not None})
                for n in targets:
                    state = _status(n, current).state
                    if state != "draft":
                        append(principal, REOPEN, episode_subject(n), n, {}, f"{action} {subject}: back to draft",
                               state, "draft")
        return entry

    def transition(self, principal: Principal, episode: int, action: str, *,
                   files: Mapping[str, str | os.PathLike[str]] | None = None, note: str = "") -> TrailEntry:
        """Move an episode through draft -> in_review -> approved -> delivered (or reject it
        back to draft), checked against its current state inside the lock."""
        require(principal, action)
        if action not in TRANSITIONS:
            raise ValueError(f"{action} is not an episode state change ({', '.join(TRANSITIONS)})")
        if action == "episode.reject" and not note.strip():
            raise InputError("a rejection needs a reason", hint="say what has to change")
        starts, target = TRANSITIONS[action]
        digests = {name: sha256_of(path) for name, path in (files or {}).items() if Path(path).is_file()}
        missing = [name for name, path in (files or {}).items() if not Path(path).is_file()]
        if missing and action in ("episode.approve", "episode.deliver"):
            raise InputError(f"episode {episode}: {', '.join(missing)} not found, so there is nothing to "
                             f"{action.split('.')[1]}", hint="render the episode first")
        with self._locked() as append:
            state = _status(episode, self.entries()).state
            if state not in starts:
                verb = action.split(".")[1]
                raise TrailError(f"episode {episode} is {STATE_LABELS[state]}: it cannot be {_DONE[verb]} now",
                                 hint=f"{verb} works from: " + ", ".join(STATE_LABELS[s] for s in STATES
                                                                          if s in starts))
            return append(principal, action, episode_subject(episode), episode, digests, note.strip(), state,
                          target)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Appender]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.root / (TRAIL_FILE + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except ImportError:
                log.warning("no file locking on this platform: the trail relies on one writer at a time")
            lines = [ln for ln in self._lines() if ln.strip()]
            yield _Appender(self.path, hashlib.sha256(lines[-1].rstrip(b"\n")).hexdigest() if lines else "",
                            _last_seq(lines))
        finally:
            os.close(lock_fd)  # closing the descriptor releases the lock


class _Appender:
    """Appends entries while the trail's lock is held, chaining each to the one before."""

    def __init__(self, path: Path, prev: str, seq: int) -> None:
        self.path, self.prev, self.seq = path, prev, seq

    def __call__(self, principal: Principal, action: str, subject: str, episode: int | None,
                 digests: dict[str, str], note: str, state_from: str | None, state_to: str | None) -> TrailEntry:
        entry = TrailEntry(seq=self.seq + 1, at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                           who=principal.name, role=principal.role, action=action, subject=subject, episode=episode,
                           hashes=digests, note=note, state_from=state_from, state_to=state_to, prev=self.prev)
        line = json.dumps(entry.to_json(), ensure_ascii=False, sort_keys=True).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line + b"\n")  # one write: a reader never sees half an entry
            os.fsync(fd)
        finally:
            os.close(fd)
        self.prev, self.seq = hashlib.sha256(line).hexdigest(), entry.seq
        log.info("trail %s: %s %s by %s", self.path.parent.name, action, subject, principal.label())
        return entry


def _last_seq(lines: list[bytes]) -> int:
    if not lines:
        return 0
    try:
        return int(json.loads(lines[-1])["seq"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise TrailError(f"the last line of {TRAIL_FILE} is damaged: {e}",
                         hint="restore trail.jsonl from a backup before recording more") from e


def _status(episode: int, entries: list[TrailEntry]) -> EpisodeStatus:
    state, history, pinned = "draft", [], {}
    for e in entries:
        if e.episode != episode or e.state_to is None:
            continue
        state = e.state_to
        history.append(e)
        if e.action in ("episode.approve", "episode.deliver"):
            pinned = dict(e.hashes)
        elif state == "draft":
            pinned = {}
    return EpisodeStatus(episode, state, tuple(history), pinned)
