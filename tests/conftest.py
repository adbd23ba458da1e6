from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = Path(os.environ.get("REELFORGE_SHARED_DATA", SHARED / "data"))
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def novels_dir(shared_data: Path) -> Path:
    path = shared_data / "novels"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def opencv_data() -> Path:
    if not (OPENCV_DATA / "Megamind.avi").exists():
        pytest.skip("Debian opencv-doc sample videos are not installed (apt-get install opencv-doc)")
    return OPENCV_DATA


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # keep user config and caches out of the tests
    monkeypatch.setenv("REELFORGE_CONFIG", str(tmp_path_factory.getbasetemp() / "no-config.toml"))
    # tracebacks of failed runs outside a project go to a log folder of the test session
    monkeypatch.setenv("REELFORGE_LOG_DIR", str(tmp_path_factory.getbasetemp() / "logs"))
    # the ledger's signing key and checkpoint log are user-level: keep the user's own out of the tests
    monkeypatch.setenv("REELFORGE_LEDGER_KEY_DIR", str(tmp_path_factory.getbasetemp() / "ledger-keys"))
    cfg = tmp_path_factory.getbasetemp() / "no-config.toml"
    if not cfg.exists():
        cfg.write_text("", encoding="utf-8")
