"""The studio picks generation providers and shows the quote before Make: the pickers list each
provider's models with whether its key is set (never the key), the quote is priced from the price
book with nothing billable sent, and Make with a paid provider shows the quote first and goes
ahead only when pressed again (through the studio's API, against a local Kling fake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.studio import Studio, StudioSettings
from core.config import load_config
from core.errors import InputError
from core.screenplay import Character, Series
from tests.support.providers import FakeKling
from tests.test_chain import _chapter_text
from tests.test_ui import REPO, _free_port
from ui.providers_panel import (
    LOCAL,
    apply_voice_rows,
    choice_key,
    provider_choices,
    quote_for,
    voice_rows,
    wants_providers,
)

KEY = "test-key-0123456789"
SECRET = "kling-secret-key-abcdef-0123456789ab"


@pytest.fixture()
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("ARK_API_KEY", "DASHSCOPE_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "MINIMAX_API_KEY",
                "OPENAI_API_KEY", "VOLC_TTS_APPID", "VOLC_TTS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REELFORGE_SECRETS", str(tmp_path / "no-secrets.toml"))


def test_pickers_list_models_per_kind_with_key_state_but_never_the_key(no_keys: None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARK_API_KEY", "ark-secret-value-0123456789")
    config = load_config()
    images = provider_choices(config, "image")
    assert images[0][1] == LOCAL
    values = {v for _, v in images}
    assert {"ark:doubao-seedream-4-0-250828", "kling:kling-v1-5"} <= values
    assert not any(v.startswith(("minimax:", "volcengine:")) for v in values)  # no image models there
    labels = dict((v, label) for label, v in images)
    assert "✓" in labels["ark:doubao-seedream-4-0-250828"]
    assert "KLING_ACCESS_KEY" in labels["kling:kling-v1-5"] and "✗" in labels["kling:kling-v1-5"]
    assert all("ark-secret-value" not in label for label, _ in images)
    videos = {v for _, v in provider_choices(config, "video")}
    assert any(v.startswith("kling:") for v in videos) and any(v.startswith("ark:doubao-seedance") for v in videos)
    voices = {v for _, v in provider_choices(config, "voice")}
    assert "minimax:speech-02-hd" in voices and any(v.startswith("volcengine:") for v in voices)


def test_quote_key_changes_with_any_choice() -> None:
    base = choice_key("abc", 1, 90, (720, 1280), "kling:kling-v1-5", "", "", "")
    assert base == choice_key("abc", 1, 90.0, [720, 1280], "kling:kling-v1-5", "", "", " ")
    assert base != choice_key("abc", 1, 90, (720, 1280), "kling:kling-v1-5", "", "", "5")
    assert base != choice_key("abc", 2, 90, (720, 1280), "kling:kling-v1-5", "", "", "")
    assert base != choice_key("abd", 1, 90, (720, 1280), "kling:kling-v1-5", "", "", "")
    assert wants_providers("", "", "minimax:speech-02-hd") and not wants_providers("", " ", "")


def test_quote_is_priced_per_model_and_flags_a_budget_it_exceeds(no_keys: None, tmp_path: Path,
                                                                   novels_dir: Path) -> None:
    novel = tmp_path / "novel.txt"
    novel.write_text(_chapter_text(novels_dir)[:2500], encoding="utf-8")
    settings = StudioSettings.from_config(load_config(), episodes=1, episode_seconds=30.0, width=270, height=480,
                                          image="kling:kling-v1-5", video="ark:doubao-seedance-1-0-pro-250528",
                                          voice="minimax:speech-02-hd")
    text = quote_for(Studio(tmp_path / "p", load_config()), novel, settings)
    assert "kling-v1-5" in text and "doubao-seedance-1-0-pro" in text and "speech-02-hd" in text
    assert "合计 total ¥" in text and "超出预算" not in text
    total = text.split("合计 total ¥ ")[1].split()[0].rstrip("（")
    assert float(total) > 0
    settings.budget = "0.01"
    text = quote_for(Studio(tmp_path / "p", load_config()), novel, settings)
    assert "预算 budget ¥ 0.01" in text and "超出预算" in text
    assert not (tmp_path / "p" / "providers" / "journal.sqlite").exists()  # nothing was submitted


def test_voice_rows_show_defaults_per_model_and_save_overrides() -> None:
    series = Series(title="t", characters=[Character(name="阿Q", description="男，三十岁"),
                                           Character(name="吴妈", description="女，老妈子", voice="minimax:female-chengshu"),
                                           Character(name="小D", description="男孩")])
    rows = voice_rows(series, "minimax:speech-02-hd")
    assert [r[0] for r in rows] == ["阿Q", "吴妈", "小D"]
    assert rows[1][2] == "minimax:female-chengshu"  # the screenplay's own
    assert all(r[3] for r in rows) and rows[0][3] != rows[1][3]  # a default each, by gender
    assert series.characters[1].voice == "minimax:female-chengshu"  # showing defaults changed nothing
    assert all(r[3] == "" for r in voice_rows(series))  # local TTS: no provider defaults shown
    rows[0][2] = "male-qn-jingying"
    assert apply_voice_rows(series, rows) == 1 and series.characters[0].voice == "male-qn-jingying"
    assert apply_voice_rows(series, rows) == 0
    with pytest.raises(InputError, match="无名"):
        apply_voice_rows(series, [["无名", "", "x", ""]])
    assert series.characters[0].voice == "male-qn-jingying"


@pytest.fixture()
def studio_with_kling(tmp_path: Path) -> Iterator[tuple[str, Path, FakeKling]]:
    with FakeKling(key=KEY, secret=SECRET) as kling:
        port = _free_port()
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", REELFORGE_LOG="WARNING",
                   KLING_ACCESS_KEY=KEY, KLING_SECRET_KEY=SECRET, REELFORGE_SECRETS=str(tmp_path / "none.toml"),
                   REELFORGE_PROVIDERS__KLING__BASE_URL=kling.base_url,
                   REELFORGE_PROVIDERS__KLING__POLL_FIRST_S="0.02", REELFORGE_PROVIDERS__KLING__CONCURRENCY="8")
        proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "ui", "--port", str(port), "--workspace",
                                 str(tmp_path / "ws")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"studio exited early:\n{out[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/config", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            proc.kill()
            pytest.fail("studio did not start within 90 s")
        try:
            yield url, tmp_path / "ws", kling
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_studio_shows_the_quote_before_a_paid_make(studio_with_kling: tuple[str, Path, FakeKling],
                                                   novels_dir: Path) -> None:
    from gradio_client import Client

    url, ws, kling = studio_with_kling
    client = Client(url + "/", verbose=False)
    text = _chapter_text(novels_dir)[:1500]
    args = [None, text, "paid", 1, 20, "竖屏 9:16 · 540x960", "silence", False, "kling:kling-v1-5", "", "", ""]
    report = client.predict(*args, api_name="/quote")
    assert "kling-v1-5" in report and "合计 total ¥" in report
    assert kling.counts["submit"] == 0

    # Make with a paid provider (a new session, no quote seen yet): first the quote, nothing sent;
    # pressed again with the same choices: the episode
    client = Client(url + "/", verbose=False)
    first = client.predict(*args, api_name="/make")
    assert first[0] is None and "请确认报价" in first[2] and "kling-v1-5" in first[2]
    assert kling.counts["submit"] == 0
    second = client.predict(*args, api_name="/make")
    video = Path(second[0]["video"] if isinstance(second[0], dict) else second[0])
    assert video.name == "ep01.mp4" and (ws / "paid" / "out" / "ep01.mp4").exists()
    assert kling.counts["submit"] > 0
    assert "providers" in second[2]  # the synth stage's engine

    # per-character voices in the studio: shown with the model's defaults, an override saved
    table = client.predict("paid", "minimax:speech-02-hd", api_name="/voices_load")
    rows = table["data"] if isinstance(table, dict) else table
    assert rows and all(r[3] for r in rows)
    rows[0][2] = "female-shaonv"
    message, screenplay = client.predict("paid", {"headers": table.get("headers") if isinstance(table, dict) else
                                                  None, "data": rows}, api_name="/voices_save")
    assert "1" in message and '"female-shaonv"' in screenplay

    # the character sheets in the review tab: approved by the headless run; one asked for again
    gallery, pick = client.predict("paid", api_name="/sheets_load")
    assert gallery and all("✓" in item["caption"] for item in gallery)
    who = gallery[0]["caption"].split(" · ")[0]
    message, _ = client.predict("paid", who, api_name="/sheet_regenerate")
    assert who in message
    sheets = json.loads((ws / "paid" / "synth" / "characters" / "sheets.json").read_text(encoding="utf-8"))
    assert sheets[who]["status"] == "regenerate" and sheets[who]["round"] == 1
