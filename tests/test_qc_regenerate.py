"""The identity fix: a shot whose face fails is made again with a new seed by the engine that made it.

The picture engine is the real diffusers loading and generation code with a tiny random
pipeline (no download); the failing face comes from a test double of the QC agent
(``tests/support/qc_fakes.py``), since random pictures show no faces. The identity check itself
is tested on real faces in ``test_qc_faces_voices.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from agents.studio import Studio, StudioSettings
from core.config import load_config
from tests.support.qc_fakes import FlakyIdentityQC

if importlib.util.find_spec("diffusers") is None or importlib.util.find_spec("transformers") is None:
    pytest.skip("diffusers and transformers are not installed (pip install 'reelforge[gpu]')", allow_module_level=True)

SAMPLE = Path(__file__).resolve().parents[1] / "ui" / "samples" / "sample_novel.txt"


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_pipelines import random_sd_pipeline

    return random_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


def test_failing_face_is_regenerated_with_a_new_seed_and_the_report_says_so(tiny_sd: Path, tmp_path: Path) -> None:
    cfg = load_config()
    cfg.models.image_model = str(tiny_sd)
    cfg.synth.steps = 2
    settings = StudioSettings.from_config(cfg, width=180, height=320, episode_seconds=20.0)
    qc = FlakyIdentityQC(fail_runs=1)
    project = tmp_path / "p"
    result = Studio(project, cfg, agents={"qc": qc}).make(SAMPLE, settings)
    shot = qc.flagged
    assert qc.seen[0]["picture"] == "diffusers"
    assert qc.calls >= 2 and qc.seen[-1]["seed"] != qc.seen[0]["seed"]  # made again, with another seed
    review = json.loads((project / "synth" / "ep01" / "review.json").read_text(encoding="utf-8"))
    assert review["shots"][shot]["seed_offset"] == 1 and list(review["shots"]) == [shot]  # only that shot
    report = result.qc[0]
    fix = next(f for f in report.fixes if f["check"] == "identity")
    assert fix == {"check": "identity", "action": "regenerated 1 shot(s) with a new seed", "shots": [shot],
                   "round": 1, "fixed": True}
    assert report.json_path is not None
    saved = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert any(f["check"] == "identity" and f["fixed"] for f in saved["fixes"])
    assert report.check("identity").status != "fail"


def test_engines_that_cannot_regenerate_say_so_and_stop(tmp_path: Path) -> None:
    cfg = load_config()
    settings = StudioSettings.from_config(cfg, width=180, height=320, episode_seconds=20.0)
    qc = FlakyIdentityQC(fail_runs=5)
    result = Studio(tmp_path / "p", cfg, agents={"qc": qc}).make(SAMPLE, settings)
    report = result.qc[0]
    fix = next(f for f in report.fixes if f["check"] == "identity")
    assert not fix["fixed"] and "cannot make a shot again" in fix["action"]
    assert report.check("identity").status == "fail" and not report.passed
    assert any("QC failed on" in n for n in result.notes)
