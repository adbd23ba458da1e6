"""Identity on real faces, distinct voices on real speech, and the cast that makes them distinct."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pipelines.qc.base import CueFact, EpisodeFacts, ShotFact
from pipelines.qc.frames import scan_frames
from pipelines.voices import GROUPS, NARRATOR_VOICE, cast_voices, parse_hint, shared_voices
from tests.conftest import OPENCV_DATA as OPENCV
from tests.conftest import SHARED_DATA
from tests.support import qc_media

CSET14 = SHARED_DATA / "images" / "CSet14"

needs_faces = pytest.mark.skipif(importlib.util.find_spec("dlib") is None
                                 or importlib.util.find_spec("face_recognition_models") is None,
                                 reason="pip install 'reelforge[qc]' (dlib-bin, face-recognition-models)")


def _image(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        pytest.skip(f"{path} is not installed here")
    return np.asarray(Image.open(path).convert("RGB"))


def _portrait(face: np.ndarray, size: tuple[int, int] = (720, 1280)) -> np.ndarray:
    """The picture as a vertical close-up: centred on a dark 9:16 frame, enlarged."""
    import cv2

    w, h = size
    scale = min(w / face.shape[1], h * 0.6 / face.shape[0])
    img = cv2.resize(face, (int(face.shape[1] * scale), int(face.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    out = np.full((h, w, 3), 30, np.uint8)
    y0, x0 = (h - img.shape[0]) // 3, (w - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return out


@needs_faces
def test_identity_flags_the_shot_where_another_person_speaks_as_the_character(tmp_path: Path) -> None:
    from pipelines.qc.identity import FaceSampler, identity_check

    lenna, man = _image(CSET14 / "lenna.png"), _image(CSET14 / "man.png")
    ref = tmp_path / "晚晚.png"
    from PIL import Image

    Image.fromarray(lenna[40:480, 60:470]).save(ref)  # the reference is another crop of the same photo
    clip = qc_media.picture_clip(tmp_path / "ep.mp4", [_portrait(lenna), _portrait(man), _portrait(lenna)], 1.0,
                                 size=(720, 1280))
    facts = EpisodeFacts(shots=[ShotFact("s1", 0.0, 1.0, speakers=("晚晚",)), ShotFact("s2", 1.0, 2.0, speakers=("晚晚",)),
                                ShotFact("s3", 2.0, 3.0, speakers=("旁人",))],
                         references={"晚晚": [ref]})
    faces = FaceSampler(facts)
    times = faces.plan(25.0)
    assert len(times) == 2  # s3's speaker has no reference: not judged
    scan_frames(clip, times, [faces])
    c = identity_check(facts, faces)
    assert c.status == "fail" and c.data["flagged"] == ["s2"], c.detail
    rows = {r["shot"]: r for r in c.data["shots"]}
    assert rows["s1"]["distance"] < 0.4 and rows["s2"]["distance"] > 0.6
    assert c.where == [(1.0, 2.0)]
    # the same person in another photograph (two frames of the basketball scene) is recognised
    b1, b2 = _image(OPENCV / "basketball1.png"), _image(OPENCV / "basketball2.png")
    ref2 = tmp_path / "球员.png"
    Image.fromarray(b1[60:200, 30:150]).save(ref2)
    clip2 = qc_media.picture_clip(tmp_path / "ep2.mp4", [_portrait(b2[60:200, 30:150])], 1.0, size=(720, 1280))
    facts2 = EpisodeFacts(shots=[ShotFact("k1", 0.0, 1.0, speakers=("球员",))], references={"球员": [ref2]})
    faces2 = FaceSampler(facts2)
    scan_frames(clip2, faces2.plan(25.0), [faces2])
    c2 = identity_check(facts2, faces2)
    assert c2.status == "pass" and c2.value < 0.6, c2.detail


@needs_faces
def test_identity_without_references_or_faces_says_so(tmp_path: Path) -> None:
    from pipelines.qc.identity import FaceSampler, identity_check

    facts = EpisodeFacts(shots=[ShotFact("s1", 0.0, 1.0, speakers=("甲",))])
    assert identity_check(facts, None).status == "skip"
    plate = np.zeros((640, 360, 3), np.uint8) + np.arange(360, dtype=np.uint8)[None, :, None] // 2
    clip = qc_media.picture_clip(tmp_path / "plate.mp4", [plate], 1.0)
    ref = tmp_path / "甲.png"
    from PIL import Image

    Image.fromarray(_image(CSET14 / "lenna.png")).save(ref)
    facts.references = {"甲": [ref]}
    faces = FaceSampler(facts)
    scan_frames(clip, faces.plan(25.0), [faces])
    c = identity_check(facts, faces)
    assert c.status == "warn" and "no face" in c.detail


# ------------------------------------------------------------------------------------------
# voices
# ------------------------------------------------------------------------------------------
def test_cast_is_stable_distinct_and_follows_gender_and_age() -> None:
    from core.screenplay import Character

    chars = [Character(name="林振", voice="zh-male-adult"), Character(name="陈默", voice="zh-male-adult"),
             Character(name="晚晚", voice="zh-female-adult", aliases=["林晚"]), Character(name="老张", voice="zh-male-old"),
             Character(name="路人", voice="zh-male-adult"), Character(name="小宝", voice="zh-male-child"),
             Character(name="主播", voice="cmn+f3")]
    cast = cast_voices(chars)
    v = cast.voices
    assert v[""] == NARRATOR_VOICE and v["林晚"] == v["晚晚"]
    assert v["主播"].voice == "cmn+f3"  # a named voice is kept as written
    assert v["晚晚"].voice.split("+")[1] in GROUPS[("female", "adult")].variants
    assert v["老张"].voice.split("+")[1] in GROUPS[("male", "old")].variants
    assert v["小宝"].pitch >= GROUPS[("male", "child")].pitch[0]
    speakers = [c.name for c in chars]
    assert not shared_voices(v, speakers)
    assert len({(x.voice, x.pitch) for n, x in v.items() if n in speakers}) == len(speakers)
    # stable: the same in a later episode, and adding a character at the end changes nobody
    assert cast_voices(chars).voices == v
    more = cast_voices([*chars, Character(name="新人", voice="zh-male-adult")]).voices
    assert all(more[n] == v[n] for n in speakers)
    # more male adults than variants: the pitch moves instead, still no two alike
    crowd = [Character(name=f"群演{i}", voice="zh-male-adult") for i in range(9)]
    cv = cast_voices(crowd).voices
    assert len({(cv[c.name].voice, cv[c.name].pitch) for c in crowd}) == 9
    assert parse_hint("zh-female-old") == ("female", "old") and parse_hint("cmn+m3") is None


def _espeak() -> object:
    from pipelines.tts import EspeakNGProgram

    if not EspeakNGProgram.available():
        pytest.skip("espeak-ng with the cmn voice is not installed")
    return EspeakNGProgram()


LINES = {"甲": ["这是你父亲的表。", "叔叔，父亲留下的账本，您见过吗？", "我会查清楚的。"],
         "乙": ["您认识我父亲？", "你一个小姑娘，就安心做你的设计师吧。", "那本账，早就烧了。"]}


def _dialogue(tmp_path: Path, voices: dict[str, object], name: str) -> tuple[Path, list[CueFact]]:
    """Two speakers taking turns, spoken by espeak-ng with ``voices``, in a 16 kHz episode clip."""
    from core.media import resample_audio

    engine = _espeak()
    rate = 48000
    audio: list[np.ndarray] = []
    cues: list[CueFact] = []
    t = 0.3
    audio.append(np.zeros(int(0.3 * rate), np.float32))
    for i in range(3):
        for who in ("甲", "乙"):
            sp = engine.synthesize(LINES[who][i], voices[who])  # type: ignore[attr-defined]
            x = resample_audio(sp.samples, sp.rate, rate) * 0.5
            cues.append(CueFact(t, t + len(x) / rate, LINES[who][i], who))
            audio += [x, np.zeros(int(0.4 * rate), np.float32)]
            t += len(x) / rate + 0.4
    samples = np.concatenate(audio)
    plate = np.full((640, 360, 3), 60, np.uint8)
    clip = qc_media.picture_clip(tmp_path / name, [plate], len(samples) / rate, audio=samples, rate=rate)
    return clip, cues


def _voice_check(clip: Path, cues: list[CueFact]) -> object:
    from pipelines.qc.loudness import measure_audio
    from pipelines.qc.speech import SpeechTrack, voice_check

    track = SpeechTrack()
    measure_audio(clip, [track])
    return voice_check(cues, track.finish())


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="pip install 'reelforge[qc]'")
def test_voice_distinct_on_real_speech(tmp_path: Path) -> None:
    from core.screenplay import Character
    from pipelines.tts import VoiceSpec

    same = VoiceSpec("cmn", 170, 50)  # how every character sounded before the cast
    clip, cues = _dialogue(tmp_path, {"甲": same, "乙": same}, "same.mp4")
    c = _voice_check(clip, cues)
    assert c.status == "fail" and c.value == 1, c.detail  # type: ignore[attr-defined]
    cast = cast_voices([Character(name="甲", voice="zh-female-adult"), Character(name="乙", voice="zh-male-adult")]).voices
    clip, cues = _dialogue(tmp_path, {"甲": cast["甲"], "乙": cast["乙"]}, "cast.mp4")
    c = _voice_check(clip, cues)
    assert c.status == "pass", c.detail  # type: ignore[attr-defined]
    # two men of the same age from the cast: different variants, still told apart
    cast = cast_voices([Character(name="甲", voice="zh-male-adult"), Character(name="乙", voice="zh-male-adult")]).voices
    assert cast["甲"].voice != cast["乙"].voice
    clip, cues = _dialogue(tmp_path, {"甲": cast["甲"], "乙": cast["乙"]}, "men.mp4")
    c = _voice_check(clip, cues)
    assert c.status == "pass", c.detail  # type: ignore[attr-defined]
