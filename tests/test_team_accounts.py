"""Accounts, roles, the approval trail and the studio's door (without a running server)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("argon2")

from core.accounts import AccountError, UserStore  # noqa: E402
from core.config import load_config  # noqa: E402
from core.errors import InputError  # noqa: E402
from core.permissions import PERMISSIONS, ROLES, AccessDenied, Principal, allowed, require  # noqa: E402
from core.trail import Trail, TrailError  # noqa: E402
from tests.support.accounts import fast_hasher  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "cfg" / "users.json", hasher=fast_hasher())


def test_accounts_hash_passwords_in_a_private_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add("alice", "admin", "correct horse battery")
    store.add("王编剧", "writer", "another good one")
    raw = store.path.read_text(encoding="utf-8")
    assert "correct horse" not in raw and "$argon2id$" in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.verify("alice", "correct horse battery") is not None
    assert store.verify("alice", "wrong password!") is None
    assert store.verify("nobody", "correct horse battery") is None
    assert [a.name for a in store.accounts()] == ["alice", "王编剧"]
    assert store.account("王编剧").role == "writer"
    with pytest.raises(AccountError, match="exists already"):
        store.add("ALICE", "writer", "whatever12345")
    with pytest.raises(InputError, match="at least"):
        store.add("bob", "writer", "short")
    with pytest.raises(InputError, match="not allowed"):
        store.add("bad name", "writer", "long enough pass")
    with pytest.raises(AccountError, match="last admin"):
        store.remove("alice")
    before = store.account("王编剧").changed_at
    store.set_password("王编剧", "a brand new phrase")
    assert store.verify("王编剧", "another good one") is None and store.verify("王编剧", "a brand new phrase")
    assert store.account("王编剧").changed_at >= before
    store.remove("王编剧")
    assert store.get("王编剧") is None


def test_a_users_file_others_can_read_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add("alice", "admin", "correct horse battery")
    os.chmod(store.path, 0o644)
    with pytest.raises(AccountError, match="chmod 600"):
        UserStore(store.path, hasher=fast_hasher()).accounts()


def test_each_role_may_do_its_own_work_and_nothing_else() -> None:
    writer, artist = Principal("w", "writer"), Principal("a", "artist")
    reviewer, accountant = Principal("r", "reviewer"), Principal("c", "accountant")
    assert allowed(writer, "screenplay.edit") and not allowed(writer, "shot.approve")
    assert allowed(artist, "shot.regenerate") and not allowed(artist, "screenplay.edit")
    assert allowed(reviewer, "episode.approve") and not allowed(reviewer, "shot.prompt")
    assert allowed(accountant, "ledger.export") and not allowed(accountant, "episode.approve")
    for role in ROLES:
        if role not in ("admin", "accountant"):
            assert not any(a.startswith(("ledger.", "claim.")) for a in PERMISSIONS[role]), role
    assert not allowed(accountant, "claim.approve")  # the preparer is not the approver
    with pytest.raises(AccessDenied, match="may not approve an episode") as e:
        require(writer, "episode.approve")
    assert "reviewer" in (e.value.hint or "")
    with pytest.raises(AccessDenied, match="not logged in"):
        require(None, "project.view")
    with pytest.raises(ValueError):
        allowed(writer, "no.such.action")


def test_trail_records_who_and_what_and_drives_the_episode_state(tmp_path: Path) -> None:
    trail = Trail(tmp_path / "proj")
    writer, reviewer = Principal("w", "writer"), Principal("r", "reviewer")
    admin, artist = Principal("boss", "admin"), Principal("a", "artist")
    video = tmp_path / "ep01.mp4"
    video.write_bytes(b"frames")
    assert trail.episode_status(1).state == "draft"
    trail.transition(writer, 1, "episode.submit")
    with pytest.raises(AccessDenied):
        trail.transition(writer, 1, "episode.approve", files={"video": video})
    entry = trail.transition(reviewer, 1, "episode.approve", files={"video": video})
    import hashlib

    assert entry.hashes["video"] == hashlib.sha256(b"frames").hexdigest()
    with pytest.raises(TrailError, match="cannot be approved"):
        trail.transition(reviewer, 1, "episode.approve", files={"video": video})
    trail.transition(admin, 1, "episode.deliver", files={"video": video})
    status = trail.episode_status(1)
    assert status.state == "delivered" and [e.who for e in status.history] == ["w", "r", "boss"]
    # content changes after submission send the episode back to draft, on the record
    trail.record(artist, "shot.regenerate", "ep01/s001", episode=1)
    assert trail.episode_status(1).state == "draft"
    with pytest.raises(InputError, match="reason"):
        trail.transition(reviewer, 1, "episode.reject")
    assert trail.verify() == []
    # an edited line breaks the chain
    lines = trail.path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace('"who": "r"', '"who": "x"')
    trail.path.write_text("".join(lines), encoding="utf-8")
    assert any("does not follow" in p for p in trail.verify())


def test_limiter_locks_an_account_after_repeated_failures() -> None:
    from ui.gate import LoginLimiter

    now = [1000.0]
    lim = LoginLimiter(per_user=3, per_address=10, window_s=60, lockout_s=60, clock=lambda: now[0])
    assert [lim.attempt("alice", "1.2.3.4") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.attempt("alice", "1.2.3.4") > 0  # locked
    assert lim.attempt("alice", "5.6.7.8") > 0  # from anywhere
    assert lim.attempt("bob", "1.2.3.4") == 0.0
    now[0] += 61
    assert lim.attempt("alice", "1.2.3.4") == 0.0
    lim.succeeded("alice", "1.2.3.4")
    # many accounts from one address: the address locks
    for i in range(10):
        lim.attempt(f"u{i}", "9.9.9.9")
    assert lim.attempt("fresh", "9.9.9.9") > 0


def test_sessions_expire_when_idle_or_old() -> None:
    from ui.gate import SessionTable

    now = [0.0]
    table = SessionTable(max_age_s=100, idle_s=30, clock=lambda: now[0])
    table.issue("t1", "alice", "x")
    now[0] = 20
    assert table.get("t1") is not None
    now[0] = 45
    assert table.get("t1") is not None  # used 25 s ago
    now[0] = 80
    assert table.get("t1") is None  # idle 35 s
    table.issue("t2", "alice", "x")
    for t in range(90, 190, 20):
        now[0] = t
        assert table.get("t2") is not None
    now[0] = 200
    assert table.get("t2") is None  # older than 100 s


def test_plan_access_refuses_an_open_door(tmp_path: Path) -> None:
    from ui.access import plan_access

    cfg = load_config()
    cfg.server.users_file = str(tmp_path / "cfg" / "users.json")
    with pytest.raises(AccessDenied, match="will not listen on 0.0.0.0") as e:
        plan_access("0.0.0.0", cfg, tmp_path / "ws")
    assert "reelforge users add" in (e.value.hint or "")
    assert plan_access("127.0.0.1", cfg, tmp_path / "ws").mode == "single-user"
    UserStore(cfg.server.users_file, hasher=fast_hasher()).add("alice", "admin", "correct horse battery")
    access = plan_access("0.0.0.0", cfg, tmp_path / "ws")
    kwargs = access.launch_kwargs()
    assert access.mode == "accounts" and kwargs["auth"] == access.verify and kwargs["show_error"] is False
    assert plan_access("127.0.0.1", cfg, tmp_path / "ws").mode == "accounts"  # accounts apply on loopback too
    cfg.server.users_file = str(tmp_path / "ws" / "users.json")
    with pytest.raises(AccountError, match="inside the studio's workspace"):
        plan_access("0.0.0.0", cfg, tmp_path / "ws")


def _cli(args: list[str], tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), REELFORGE_LOG="WARNING")
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], cwd=REPO, env=env, input=stdin, text=True,
                          capture_output=True, timeout=120)


def test_ui_on_all_addresses_without_users_refuses_to_start(tmp_path: Path) -> None:
    r = _cli(["ui", "--host", "0.0.0.0", "--port", "9", "--workspace", str(tmp_path / "ws")], tmp_path)
    assert r.returncode != 0
    assert "reelforge users add" in r.stderr and "Traceback" not in r.stderr


def test_users_cli_adds_lists_and_removes(tmp_path: Path) -> None:
    r = _cli(["users", "add", "alice", "--role", "admin", "--password-stdin"], tmp_path, "correct horse battery\n")
    assert r.returncode == 0, r.stderr
    r = _cli(["users", "add", "bob", "--role", "writer", "--password-stdin"], tmp_path, "short\n")
    assert r.returncode != 0 and "at least" in r.stderr and "Traceback" not in r.stderr
    r = _cli(["users", "add", "bob", "--role", "writer", "--password-stdin"], tmp_path, "long enough pass\n")
    assert r.returncode == 0, r.stderr
    listed = json.loads(_cli(["users", "list", "--json"], tmp_path).stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "admin"), ("bob", "writer")]
    assert _cli(["users", "passwd", "bob", "--password-stdin"], tmp_path, "new long pass\n").returncode == 0
    assert _cli(["users", "remove", "bob"], tmp_path).returncode == 0
    users_file = tmp_path / "xdg" / "reelforge" / "users.json"
    assert "bob" not in users_file.read_text(encoding="utf-8")
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
