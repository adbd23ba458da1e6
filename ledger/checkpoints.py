"""Signed checkpoints of the chain, in the manner of transparency logs.

The row hashes follow a documented recipe anyone can recompute, so on its own the chain only
shows that the rows agree with each other: a forger who edits a row and recomputes every hash
after it gets a chain that verifies. What they cannot make is a *signed* statement that an
earlier state of the chain was something else. A checkpoint says "this ledger had ``count``
rows and its head was ``head`` at ``at``", signed with an Ed25519 key (the ``cryptography``
package) that lives outside the database:

- the key is user-level (``$REELFORGE_LEDGER_KEY_DIR``, default ``~/.config/reelforge/ledger``),
  created on first use with mode 0600; a key readable by others is refused;
- every checkpoint goes into an append-only log beside the key, one JSON line per checkpoint,
  each line carrying the sha256 of the line before it (so a removed line shows), and into every
  export (``YEAR_checkpoint.json`` and ``checkpoint.json`` in the evidence ZIP);
- ``verify`` proves the current chain *extends* every checkpoint it finds or is given: the row
  at position ``count`` must still hash to ``head`` (the recompute of every row before it is the
  ordinary chain check). A re-hash or a truncation after a checkpoint fails at that position.

A checkpoint is only as good as the key: ``verify`` trusts the local key and the keys passed
with ``--trust-key`` (the public key is printed on every export), nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import LedgerError
from ledger.models import CHINA_TZ

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)

KEY_DIR_ENV = "REELFORGE_LEDGER_KEY_DIR"
VERSION = 1
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def key_dir() -> Path:
    env = os.environ.get(KEY_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or "~/.config"
    return Path(base).expanduser() / "reelforge" / "ledger"


def key_path() -> Path:
    return key_dir() / "signing-key.pem"


def log_dir() -> Path:
    return key_dir() / "checkpoints"


def log_path(ledger_id: str) -> Path:
    return log_dir() / f"{ledger_id}.jsonl"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("cryptography", "ledger") from e
    return serialization, ed25519


def load_signing_key(*, create: bool) -> Ed25519PrivateKey | None:
    """The user's signing key; created (mode 0600) when missing and ``create``."""
    serialization, ed25519 = _crypto()
    path = key_path()
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_signing_key(create=False)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        log.warning("created the ledger signing key %s (keep it safe and back it up: it vouches for every "
                    "checkpoint this user signs)", path)
        return key  # type: ignore[no-any-return]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise LedgerError(f"the ledger signing key {str(path)!r} can be read by other users (mode {mode:o})",
                          hint=f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise LedgerError(f"the ledger signing key {str(path)!r} cannot be read: {e}",
                          hint="restore it from backup; checkpoints it signed stay verifiable with its public key") from e
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise LedgerError(f"the ledger signing key {str(path)!r} is not an Ed25519 key")
    return key


def public_key_hex(key: Ed25519PrivateKey) -> str:
    serialization, _ = _crypto()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return bytes(raw).hex()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement of the chain's length and head at a moment."""

    ledger_id: str
    count: int  # rows in the chain = position of the last row
    head: str  # row_hash of the row at position ``count``
    at: str  # ISO time, UTC
    reason: str  # what wrote it: "export 2025", "claim.record #3"
    key: str  # the Ed25519 public key, hex
    signature: str = ""  # hex

    def payload(self) -> bytes:
        return _ENCODER.encode({"v": VERSION, "ledger_id": self.ledger_id, "count": self.count, "head": self.head,
                                "at": self.at, "reason": self.reason, "key": self.key}).encode("utf-8")

    def signature_ok(self) -> bool:
        _, ed25519 = _crypto()
        from cryptography.exceptions import InvalidSignature

        try:
            ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.key)).verify(
                bytes.fromhex(self.signature), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def local_time(self) -> str:
        """``at`` in China time, e.g. ``2025-03-01 14:05:09 (Asia/Shanghai)``."""
        return local_time(self.at)

    def label(self) -> str:
        return f"checkpoint of {self.local_time()} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Checkpoint:
        try:
            cp = cls(str(data["ledger_id"]), int(data["count"]), str(data["head"]), str(data["at"]),
                     str(data["reason"]), str(data["key"]), str(data["signature"]))
        except (KeyError, TypeError, ValueError) as e:
            raise LedgerError(f"{where} is not a ledger checkpoint ({type(e).__name__}: {e})",
                              hint="give a YEAR_checkpoint.json, an export folder or an evidence ZIP") from e
        return cp


def local_time(stamp: str) -> str:
    at = datetime.fromisoformat(stamp)
    return at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") + " (Asia/Shanghai)"


def sign(key: Ed25519PrivateKey, ledger_id: str, count: int, head: str, at: str, reason: str) -> Checkpoint:
    cp = Checkpoint(ledger_id, count, head, at, reason, public_key_hex(key))
    return dataclasses.replace(cp, signature=key.sign(cp.payload()).hex())


# --- the append-only log --------------------------------------------------------------------------
def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def append_to_log(cp: Checkpoint, db_path: str) -> Path:
    """Append ``cp`` to the ledger's log, linked to the line before it (under a file lock)."""
    path = log_path(cp.ledger_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): appends are still one write each
            pass
        f.seek(0)
        lines = [x for x in f.read().split("\n") if x]
        prev = _line_hash(lines[-1]) if lines else ""
        entry = _ENCODER.encode({"checkpoint": cp.to_dict(), "prev": prev, "db": db_path})
        f.write(entry + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


@dataclass(slots=True)
class Found:
    """Checkpoints read from logs and files, and what was wrong with the sources."""

    checkpoints: list[tuple[Checkpoint, str]] = dataclasses.field(default_factory=list)  # (checkpoint, where)
    problems: list[str] = dataclasses.field(default_factory=list)


def read_log(path: Path, found: Found, *, ledger_id: str, db_path: str, created_at: str = "") -> None:
    """Checkpoints of one log file that belong to this ledger, checking the lines link up. A
    checkpoint signed for another ledger id at this file's path while this ledger already existed
    means the ledger's id was changed (a new ledger made later at the same path is not flagged)."""
    prev = ""
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line:
            continue
        where = f"checkpoint log {path.name} line {n}"
        try:
            entry = json.loads(line)
            cp = Checkpoint.from_dict(entry["checkpoint"], where)
        except (ValueError, KeyError, TypeError, LedgerError) as e:
            found.problems.append(f"{where} cannot be read ({e}): the log was edited")
            prev = _line_hash(line)
            continue
        if entry.get("prev", "") != prev:
            found.problems.append(f"{where} does not follow the line before it: lines of the append-only log "
                                  "were removed or edited")
        prev = _line_hash(line)
        if cp.ledger_id == ledger_id:
            found.checkpoints.append((cp, where))
        elif entry.get("db") == db_path and (not created_at or _utc(created_at) <= _utc(cp.at)):
            found.problems.append(f"{where}: a checkpoint of this file was signed for ledger id {cp.ledger_id}, "
                                  f"but the file now says its id is {ledger_id}: the ledger's identity was changed")


def _utc(stamp: str) -> datetime:
    at = datetime.fromisoformat(stamp)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def read_sources(sources: Iterable[str | os.PathLike[str]], found: Found) -> None:
    """Checkpoints from files: a ``*_checkpoint.json``, an export folder, an evidence ZIP or a log."""
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*checkpoint.json"))
            if not files:
                raise LedgerError(f"no checkpoint file (*_checkpoint.json) in {str(path)!r}",
                                  hint="give the folder an export wrote, its evidence ZIP or the JSON file")
            read_sources(files, found)
        elif not path.is_file():
            raise LedgerError(f"checkpoint file {str(path)!r} does not exist")
        elif path.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    data = json.loads(zf.read("checkpoint.json"))
            except (zipfile.BadZipFile, KeyError, ValueError) as e:
                raise LedgerError(f"{str(path)!r} holds no readable checkpoint.json ({e})") from e
            found.checkpoints.append((Checkpoint.from_dict(data, str(path)), str(path)))
        elif path.suffix.lower() == ".jsonl":
            for line in path.read_text(encoding="utf-8").split("\n"):
                if line:
                    found.checkpoints.append((Checkpoint.from_dict(json.loads(line)["checkpoint"], str(path)),
                                              str(path)))
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise LedgerError(f"{str(path)!r} is not a checkpoint (JSON) file ({e})") from e
            found.checkpoints.append((Checkpoint.from_dict(data, str(path)), str(path)))


def gather(*, ledger_id: str, db_path: str, created_at: str = "", sources: Iterable[str | os.PathLike[str]] = (),
           trusted_keys: Iterable[str] = ()) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint for this ledger from the local logs and ``sources``, and the problems:
    logs that were edited, checkpoints whose signature fails, keys not trusted, another ledger's
    checkpoints given by mistake or after the ledger's id was changed."""
    found = Found()
    if log_dir().is_dir():
        for path in sorted(log_dir().glob("*.jsonl")):
            read_log(path, found, ledger_id=ledger_id, db_path=db_path, created_at=created_at)
    given_from = len(found.checkpoints)
    read_sources(sources, found)
    key = load_signing_key(create=False)
    trusted = {k.strip().lower() for k in trusted_keys if k.strip()}
    if key is not None:
        trusted.add(public_key_hex(key))
    good: dict[tuple[int, str], Checkpoint] = {}
    for n, (cp, where) in enumerate(found.checkpoints):
        if not cp.signature_ok():
            found.problems.append(f"{where}: the signature of the {cp.label()} does not verify: it was altered")
        elif cp.key not in trusted:
            found.problems.append(f"{where}: the {cp.label()} is signed by key {cp.key}, which is not trusted here "
                                  "(pass --trust-key KEY if it is the key printed on the export)")
        elif cp.ledger_id != ledger_id:
            if n >= given_from:
                found.problems.append(f"{where}: the {cp.label()} belongs to ledger {cp.ledger_id}, this file is "
                                      f"ledger {ledger_id}")
        else:
            good.setdefault((cp.count, cp.head), cp)
    return sorted(good.values(), key=lambda c: (c.count, c.at)), found.problems
