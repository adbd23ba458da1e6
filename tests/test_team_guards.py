"""Every action behind the studio page is checked on the server; claims name who prepared and who
approved them; the novel upload takes documents only. (No server: the handlers are called as
Gradio would call them.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

gr = pytest.importorskip("gradio")
pytest.importorskip("argon2")

from core.accounts import UserStore  # noqa: E402
from core.config import load_config  # noqa: E402
from core.permissions import ROLES, allowed  # noqa: E402
from ledger.api import Ledger  # noqa: E402
from ledger.errors import ClaimConflictError  # noqa: E402
from tests.support.accounts import fast_hasher  # noqa: E402
from tests.support.ledger import USCC_DEEPSEEK, USCC_STUDIO, n20, paid_invoice  # noqa: E402
from ui.access import ACTION_ATTR, StudioAccess  # noqa: E402


@dataclass
class FakeRequest:
    username: str | None


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, StudioAccess, Path]:
    from ui.app import build_app

    tmp = tmp_path_factory.mktemp("guards")
    cfg = load_config()
    cfg.ledger.db = str(tmp / "ledger.sqlite")
    users = UserStore(tmp / "users.json", hasher=fast_hasher())
    for role in ROLES:
        users.add(f"{role}1", role, "a long enough phrase")
    access = StudioAccess("accounts", users, cfg)
    return build_app(cfg, tmp / "ws", access=access), access, tmp


def _endpoints(demo: Any) -> list[Any]:
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return [f for f in fns if f.fn is not None]


def test_every_endpoint_is_guarded_and_refuses_the_roles_without_it(studio) -> None:  # type: ignore[no-untyped-def]
    demo, _, tmp = studio
    endpoints = _endpoints(demo)
    assert len(endpoints) > 25
    unguarded = [f.api_name for f in endpoints if not getattr(f.fn, ACTION_ATTR, None)]
    assert unguarded == []
    # the make flow's and the review tab's endpoints, each under the action it needs
    actions = {f.api_name: getattr(f.fn, ACTION_ATTR) for f in endpoints if f.api_name}
    expected = {"make": "project.make", "quote": "project.make", "stop": "run.stop",
                "save_screenplay": "screenplay.edit", "voices_load": "project.view",
                "voices_save": "screenplay.edit", "sheets_load": "project.view", "sheet_approve": "shot.approve",
                "sheet_regenerate": "shot.reject", "review_approve": "shot.approve",
                "review_regenerate": "shot.regenerate", "review_rerender": "episode.render",
                "episode_deliver": "episode.deliver"}
    assert {k: actions.get(k) for k in expected} == expected
    refusals = 0
    for f in endpoints:
        action = getattr(f.fn, ACTION_ATTR)
        n_inputs = len(f.inputs)
        for role in ROLES:
            if allowed(_principal(role), action):
                continue
            args = ["x"] * n_inputs
            with pytest.raises(gr.Error, match="may not"):
                _call(f.fn, args, FakeRequest(f"{role}1"))
            refusals += 1
        # nobody logged in: refused too
        with pytest.raises(gr.Error, match="not logged in"):
            _call(f.fn, ["x"] * n_inputs, FakeRequest(None))
    assert refusals > 40
    assert not (tmp / "ws" / "x").exists() and not (tmp / "ledger.sqlite").exists()  # nothing was touched


def _principal(role: str) -> Any:
    from core.permissions import Principal

    return Principal(f"{role}1", role)  # type: ignore[arg-type]


def _call(fn: Any, args: list[Any], request: FakeRequest) -> Any:
    import inspect

    out = fn(*args, request=request)
    if inspect.isgenerator(out):
        return list(out)
    return out


def test_the_novel_upload_takes_documents_only(studio) -> None:  # type: ignore[no-untyped-def]
    demo, access, tmp = studio
    make = next(f.fn for f in _endpoints(demo) if f.api_name == "make")
    image = tmp / "novel.png"
    image.write_bytes(b"\x89PNG")
    with pytest.raises(gr.Error, match="not a novel file"):
        make(str(image), "", "p", 1, 20, "", "silence", False, request=FakeRequest("writer1"))
    kwargs = StudioAccess.single_user(access.config).launch_kwargs()
    assert kwargs["max_file_size"] == access.config.server.max_upload_mb * 1024 * 1024
    assert kwargs["show_error"] is False


def test_a_claim_records_who_prepared_it_and_who_approved_it(tmp_path: Path) -> None:
    db = tmp_path / "studio.sqlite"
    with Ledger(db, actor="qian") as lg:
        lg.master.add_company("影锻文化传媒有限公司", USCC_STUDIO, 10)
        lg.master.add_vendor("深度求索", USCC_DEEPSEEK, aliases=["deepseek"])
        paid_invoice(lg, "深度求索", n20(2025, 1), "2025-03-01", "1000.00", "60.00", "1060.00")
        rec = lg.claims.record(5, 2025)
        assert rec.claim_id is not None
        s = lg.claims.signoff(rec.claim_id)
        assert s.prepared_by == "qian" and not s.approved
    from ui.cli import main

    assert main(["ledger", "--db", str(db), "approve", str(rec.claim_id), "--note", "核对无误"]) == 0
    from ledger.store import actor

    with Ledger(db, actor="boss") as lg:
        s = lg.claims.signoff(rec.claim_id)
        assert (s.prepared_by, s.approved_by, s.note) == ("qian", actor(), "核对无误") and s.approved
        with pytest.raises(ClaimConflictError, match="approved by"):
            lg.claims.approve(rec.claim_id)  # an approval is recorded once
        lg.integrity.require_intact(before="check the approvals")  # the approval is in the chained log
