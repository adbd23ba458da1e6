"""The synth package's seams and the compliance primitives around it: the picture-engine registry
(a plug-in engine renders an episode), inputs checked by the agent base before any work, paths
from screenplay data kept inside the project, the review gate, one label writer, one price lookup."""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import replace
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import agents.synth as synth
from agents.base import Agent, AgentResult, RunContext
from agents.cut import CutAgent, CutInput, ReviewPending
from agents.enhance import EnhanceInput
from agents.synth import (
    PICTURE_ENGINES,
    EpisodeJob,
    EpisodeRender,
    Keyframe,
    PictureEngine,
    SynthAgent,
    SynthInput,
    review_shot,
)
from core.aigc import make_label
from core.config import load_config
from core.errors import FieldError, InputError
from core.screenplay import Character, Episode, Line, Scene, Series, Shot
from core.usage import UsageRecord
from core.workspace import Workspace
from pipelines.label import check_media, save_labelled_png
from ui.cli import main

ROOT = Path(__file__).resolve().parents[1]


def series(shots: list[Shot] | None = None) -> Series:
    shots = shots or [Shot(id="e01s01k00", seconds=1.6, visual_prompt="未庄街景"),
                      Shot(id="e01s01k01", characters=["阿Q"], lines=[Line(speaker="阿Q", text="我们先前阔的多啦！")])]
    return Series(title="测试剧", characters=[Character(name="阿Q")],
                  episodes=[Episode(number=1, title="开端", scenes=[Scene(id="e01s01", place="未庄", shots=shots)])])


def _inp(out: Path, **kw: object) -> SynthInput:
    base = SynthInput(series=series(), episode=1, out_dir=out, width=90, height=160, tts="silence")
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One animatic episode, rendered once; tests work on copies of its folder."""
    out = tmp_path_factory.mktemp("rendered") / "synth" / "ep01"
    SynthAgent()(_inp(out), RunContext(config=load_config()))
    return out


def _copy(rendered: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "synth" / "ep01"
    shutil.copytree(rendered, dst)
    return dst


# --- the package -----------------------------------------------------------------------------
def test_public_names_and_module_sizes() -> None:
    for name in ("SynthAgent", "SynthInput", "EpisodeRender", "ShotRender", "TimedLine", "BudgetExceeded", "Quote",
                 "review_shot", "load_review", "GAP", "LEAD_IN", "PICTURE_ENGINES", "PictureEngine", "VoiceEngine",
                 "EpisodeJob", "Keyframe"):
        assert hasattr(synth, name), name
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (ROOT / "agents" / "synth").glob("*.py")}
    assert {"schema.py", "job.py", "quote.py", "review.py", "sound.py", "pictures.py", "keyframes.py", "shots.py",
            "agent.py"} <= set(sizes)
    assert max(sizes.values()) < 600, sizes


def test_picture_engine_registry_lists_and_refuses_unknown_names(tmp_path: Path) -> None:
    assert PICTURE_ENGINES.names()[:2] == ["animatic", "diffusers"]
    status = {s.name: s for s in PICTURE_ENGINES.status()}
    assert status["animatic"].available and status["diffusers"].description
    with pytest.raises(InputError, match="unknown picture 'nope'.*animatic"):
        PICTURE_ENGINES.create("nope")
    with pytest.raises(FieldError, match="engine 'nope'.*not a picture engine"):
        _inp(tmp_path / "x", engine="nope").check()


class _SolidEngine(PictureEngine):
    """A plug-in engine: a flat grey keyframe per shot, one image each on the usage records."""

    name = "solid"

    def pictures(self, job: EpisodeJob) -> dict[str, Keyframe]:
        from agents.synth.job import file_hash

        out = {}
        job.path("keyframes").mkdir(parents=True, exist_ok=True)
        for p in job.plans:
            png, rec = job.path("keyframes", f"{p.shot.id}.png"), job.path("keyframes", f"{p.shot.id}.json")
            save_labelled_png(np.full((64, 36, 3), 77, np.uint8), png, make_label(job.inp.producer, p.shot.id))
            rec.write_text(json.dumps({"record": {"prompt": "grey", "seed": 7}}), encoding="utf-8")
            out[p.shot.id] = Keyframe(png, rec, "grey", 7, file_hash(png))
            job.usage.append(UsageRecord("synth", self.name, "image", Decimal(1), model="grey", licence="CC0-1.0"))
        return out


def test_a_plug_in_picture_engine_renders_an_episode(tmp_path: Path) -> None:
    PICTURE_ENGINES.add("solid", _SolidEngine, description="flat grey keyframes")
    try:
        out = tmp_path / "ep01"
        res = SynthAgent()(_inp(out, engine="solid"), RunContext(config=load_config()))
    finally:
        PICTURE_ENGINES.remove("solid")
    render = res.output
    assert render.engine == "solid" and [s.picture for s in render.shots] == ["solid", "solid"]
    assert [s.seed for s in render.shots] == [7, 7] and render.shots[0].keyframe_record == "keyframes/e01s01k00.json"
    from PIL import Image

    still = np.asarray(Image.open(out / render.shots[0].keyframe).convert("RGB"))
    assert still.shape == (64, 36, 3) and int(still.mean()) == 77  # the engine's picture, not a plate
    assert sum(r.quantity for r in res.usage if r.engine == "solid") == 2


# --- inputs are checked by the base, before any work ------------------------------------------
@pytest.mark.parametrize(("change", "field", "value"), [
    ({"width": 91}, "width", "91"), ({"height": 0}, "height", "0"), ({"episode": 3}, "episode", "3"),
    ({"crf": 60}, "crf", "60"), ({"preset": "turbo"}, "preset", "'turbo'"), ({"audio_rate": 100}, "audio_rate", "100"),
    ({"steps": 0}, "steps", "0"), ({"fps": Fraction(0)}, "fps", "Fraction(0, 1)"), ({"tts": " "}, "tts", "' '"),
])
def test_synth_input_errors_name_the_field_the_value_and_the_fix(tmp_path: Path, change: dict[str, object],
                                                                   field: str, value: str) -> None:
    with pytest.raises(FieldError) as err:
        SynthAgent()(_inp(tmp_path / "ep01", **change), RunContext(config=load_config()))
    assert err.value.field == field and err.value.message.startswith(f"{field} {value}:") and err.value.hint
    assert not (tmp_path / "ep01").exists()  # refused before any work


def test_the_base_checks_every_input_before_run(tmp_path: Path) -> None:
    ran: list[object] = []

    class Probe(Agent[SynthInput, None]):
        name = "probe"

        def run(self, inp: SynthInput, ctx: RunContext) -> AgentResult[None]:
            ran.append(inp)
            return AgentResult(output=None, engine="probe")

    ctx = RunContext(config=load_config())
    with pytest.raises(FieldError, match="width"):
        Probe()(_inp(tmp_path, width=7), ctx)
    assert ran == []
    Probe()(_inp(tmp_path), ctx)
    assert len(ran) == 1

    class NoCheck:
        pass

    with pytest.raises(TypeError, match="has no check"):
        Probe()(NoCheck(), ctx)  # type: ignore[arg-type]
    src = tmp_path / "in.png"
    src.write_bytes(b"")
    with pytest.raises(FieldError, match="scale 0: must be a number from 1 to 16"):
        EnhanceInput(src, tmp_path / "out.png", scale=0).check()
    with pytest.raises(FieldError, match="model 'sharp'"):
        EnhanceInput(src, tmp_path / "out.png", method="sharp").check()


# --- paths from screenplay data ---------------------------------------------------------------
@pytest.mark.parametrize("bad_id", ["../../../escape", "/tmp/reelforge-escape", "..\\..\\escape", "a/../../b"])
def test_a_shot_id_cannot_write_outside_the_project(tmp_path: Path, bad_id: str) -> None:
    # model_construct skips any load-time id check: synth refuses the id itself, before any work
    bad = Shot.model_construct(id=bad_id, lines=[Line(speaker="阿Q", text="出去！")])
    out = tmp_path / "proj" / "synth" / "ep01"
    with pytest.raises(InputError, match="shot id .* cannot be used as a file name"):
        SynthAgent()(_inp(out, series=series([bad])), RunContext(config=load_config()))
    assert list(tmp_path.iterdir()) == []
    assert not Path("/tmp/reelforge-escape.json").exists()
    # and every path the steps build from screenplay data is joined safely (the write-side guard)
    inp = _inp(out, series=series([bad]))
    job = EpisodeJob(inp=inp, settings=synth.resolve_settings(inp, load_config()), ctx=RunContext(config=load_config()),
                     episode=inp.series.episodes[0])
    with pytest.raises(InputError, match="leads out|absolute"):
        job.path("shots", f"{bad_id}.mp4")
    assert job.sheet_path("../../阿Q").parent == out.parent / "characters"


def test_cut_refuses_a_render_pointing_outside_its_folder(rendered: Path, tmp_path: Path) -> None:
    out = _copy(rendered, tmp_path)
    render = EpisodeRender.load(out / "render.json")
    render.shots[1].clip = "../../../stolen.mp4"
    (tmp_path / "stolen.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="leads out"):
        CutAgent()(CutInput(render, out, tmp_path / "ep.mp4", tmp_path / "ep.srt"), RunContext(config=load_config()))
    assert not (tmp_path / "ep.mp4").exists()


# --- the review gate --------------------------------------------------------------------------
def test_review_gate_refuses_when_required_and_warns_when_not(rendered: Path, tmp_path: Path) -> None:
    out = _copy(rendered, tmp_path)
    review_shot(out, "e01s01k00", "approve")
    render = EpisodeRender.load(out / "render.json")
    ctx = RunContext(config=load_config())
    video, srt = tmp_path / "ep.mp4", tmp_path / "ep.srt"
    with pytest.raises(ReviewPending, match=r"1 of 2 shot\(s\) are not approved in review \(e01s01k01\)") as err:
        CutAgent()(CutInput(render, out, video, srt, review_required=True), ctx)
    assert "--approve" in (err.value.hint or "") and not video.exists()
    res = CutAgent()(CutInput(render, out, video, srt), ctx)  # off: assembled, with the warning
    assert video.exists() and res.output.frames == render.total_frames
    assert any("not approved in review yet (e01s01k01)" in n for n in ctx.notes)
    review_shot(out, "e01s01k01", "approve")
    done = CutAgent()(CutInput(EpisodeRender.load(out / "render.json"), out, tmp_path / "b.mp4", tmp_path / "b.srt",
                               review_required=True), RunContext(config=load_config()))
    assert done.output.frames == render.total_frames


def test_review_required_from_the_cli_and_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "proj").create({"studio": {"width": 90, "height": 160, "tts": "silence"}})
    series().save(ws.screenplay_path)
    assert main(["-q", "synth", str(ws.root), "--engine", "nope"]) == 1
    assert "engine 'nope': is not a picture engine" in capsys.readouterr().err
    assert main(["-q", "synth", str(ws.root), "--review-required"]) == 0
    assert "awaiting approval: e01s01k00, e01s01k01" in capsys.readouterr().err
    assert main(["-q", "cut", "assemble", str(ws.root), "--review-required"]) == 1
    err = capsys.readouterr().err
    assert "e01s01k00, e01s01k01" in err and "not assembled" in err and "--approve" in err
    assert not ws.episode_video(1).exists()
    monkeypatch.setenv("REELFORGE_REVIEW__REQUIRED", "true")
    assert load_config().review.required
    assert main(["-q", "cut", "assemble", str(ws.root)]) == 1  # from the config
    assert main(["-q", "cut", "assemble", str(ws.root), "--no-review-required"]) == 0  # the flag wins
    assert ws.episode_video(1).exists()
    # a cut made before the gate was on is not handed out while shots are pending
    assert main(["-q", "cut", "assemble", str(ws.root)]) == 1
    assert main(["-q", "synth", str(ws.root), "--approve", "e01s01k00", "--approve", "e01s01k01"]) == 0
    assert main(["-q", "cut", "assemble", str(ws.root)]) == 0
    with pytest.raises(ReviewPending):
        from agents.cut import rough_cut_project

        review_shot(ws.synth_dir(1), "e01s01k01", "regenerate")
        rough_cut_project(ws.root, review_required=True)


# --- one label writer, one price lookup -------------------------------------------------------
def _sources(*packages: str) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for pkg in packages for p in (ROOT / pkg).rglob("*.py")}


def test_one_label_writer_and_synth_outputs_carry_it(rendered: Path) -> None:
    writers = [p.relative_to(ROOT).as_posix() for p, text in _sources("agents", "pipelines", "core", "ui").items()
               if "tc260.org.cn/ns/AIGC" in text]
    assert writers == ["pipelines/label.py"]
    render = EpisodeRender.load(rendered / "render.json")
    for path in (rendered / render.shots[0].keyframe, rendered / render.cover, rendered / render.shots[1].audio):
        report = check_media(path, visible=False)
        assert report.ok and report.implicit is not None and report.implicit["ContentProducer"] == "ReelForge", path


def test_one_price_lookup_and_no_agent_imports_the_ledger(tmp_path: Path) -> None:
    for path, text in _sources("agents").items():
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "ledger" or n.startswith("ledger.") for n in names), path
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                assert "ledger" not in ast.unparse(node), path
    import ledger.pricebook
    from core import prices

    assert ledger.pricebook.PriceBook is prices.PriceBook and ledger.pricebook.PriceEntry is prices.PriceEntry
    # the synth quote reads the price book named in the config
    book = tmp_path / "prices.toml"
    book.write_text('[[price]]\nmodel = "tiny"\nunit = "image"\nprice = "0.40"\n'
                    '[[price]]\nmodel = "tiny"\nunit = "cpu_second"\nprice = "0.01"\n', encoding="utf-8")
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")
    cfg = load_config()
    cfg.ledger.price_book = str(book)
    cfg.device = "cpu"
    q = SynthAgent().quote(_inp(tmp_path / "ep01", image_model=str(model), steps=1, gen_size=(64, 64)), cfg)
    assert q.priced and q.lines[0].price == Decimal("0.40") and q.lines[0].cost_fen == 40 * q.images
    assert q.cost_fen == sum(ln.cost_fen or 0 for ln in q.lines)
    assert prices.price_lookup(book)("tiny", "image", date.today()) == Decimal("0.40")  # type: ignore[misc]
