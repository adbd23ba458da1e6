"""Do the faces in a shot belong to the character speaking in it?

Faces are found and described with dlib (``dlib-bin``: the library prebuilt, Boost licence) and
the models of ``face-recognition-models`` (pip, nothing downloaded at run time): the HOG frontal
face detector, the 5-point landmark model and the ResNet face encoder (both CC0; the 68-point
model, trained on data with non-commercial terms, is not used). Two faces belong to the same
person when their 128-d descriptors are closer than 0.6 (the encoder's published operating
point, as in ``face_recognition``'s default tolerance).

For each shot with a speaking character who has reference pictures (the project's character
sheets, or pictures a person put in ``references/``), the middle frame of the shot is searched
for faces; when faces are found and none is within 0.6 of the speaker's references, the shot is
flagged with the distance. Shots without a face, or whose speaker has no reference, are not
judged (and counted in the detail). The model files are located without importing
``face_recognition_models`` itself, whose ``__init__`` needs ``pkg_resources``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import MissingDependencyError, ModelError
from pipelines.qc.base import CheckResult, EpisodeFacts, ShotFact, Span, Status, skipped

log = logging.getLogger(__name__)

SAME_PERSON = 0.6
DETECT_WIDTH = 540  # faces are looked for on a copy this wide (close-ups fill 9:16 frames)


def _model_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("face-recognition-models", "qc")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class FaceEncoder:
    """dlib's HOG detector + 5-point landmarks + ResNet encoder, loaded once."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as e:
            raise MissingDependencyError("dlib-bin", "qc") from e
        root = _model_dir()
        shape, net = root / "shape_predictor_5_face_landmarks.dat", root / "dlib_face_recognition_resnet_model_v1.dat"
        for f in (shape, net):
            if not f.is_file():
                raise ModelError(f"face model {str(f)!r} is missing", hint="pip install --force-reinstall face-recognition-models")
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(shape))
        self.net = dlib.face_recognition_model_v1(str(net))

    def faces(self, rgb: np.ndarray, upsample: int = 0) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """(box x0, y0, x1, y1 in ``rgb`` pixels, 128-d descriptor) for each frontal face."""
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_WIDTH / w) if upsample == 0 else 1.0
        small = cv2.resize(rgb, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        small = np.ascontiguousarray(small)
        rects = self.detector(small, upsample)
        out = []
        img = np.ascontiguousarray(rgb)
        for r in rects:
            box = self._dlib.rectangle(int(r.left() / scale), int(r.top() / scale), int(r.right() / scale),
                                       int(r.bottom() / scale))
            desc = np.asarray(self.net.compute_face_descriptor(img, self.shape(img, box)), np.float32)
            out.append(((box.left(), box.top(), box.right(), box.bottom()), desc))
        return out


def reference_descriptors(encoder: FaceEncoder, pictures: Sequence[Path]) -> list[np.ndarray]:
    """One descriptor per picture that shows a face (the largest face; small pictures are upsampled)."""
    from PIL import Image

    out = []
    for p in pictures:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        found = encoder.faces(rgb, upsample=1 if max(rgb.shape[:2]) < 1000 else 0)
        if not found:
            log.warning("reference picture %s shows no face the detector can find; it is not used", p)
            continue
        box, desc = max(found, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
        out.append(desc)
    return out


@dataclass(slots=True)
class FaceSampler:
    """Frame sampler: the middle frame of each judged shot, searched for faces."""

    facts: EpisodeFacts
    encoder: FaceEncoder | None = None
    found: dict[str, list[tuple[tuple[int, int, int, int], np.ndarray]]] = field(default_factory=dict)
    times: dict[int, str] = field(default_factory=dict)

    def plan(self, fps: float) -> list[float]:
        """Times to sample: the middle of each shot whose speaker has references."""
        out = []
        for shot in judged_shots(self.facts):
            t = (shot.start + shot.end) / 2
            self.times[int(round(t * fps))] = shot.id
            out.append(t)
        return out

    def __call__(self, index: int, t: float, rgb: np.ndarray) -> None:
        shot = self.times.get(index)
        if shot is None:
            return
        if self.encoder is None:
            self.encoder = FaceEncoder()
        self.found[shot] = self.encoder.faces(rgb)


def judged_shots(facts: EpisodeFacts) -> list[ShotFact]:
    refs = {k for k, v in facts.references.items() if v}
    return [s for s in facts.shots if any(sp in refs for sp in s.speakers)]


def identity_check(facts: EpisodeFacts, sampler: FaceSampler | None) -> CheckResult:
    if not facts.shots:
        return skipped("identity", "the episode's shots are unknown (no render.json)")
    refs = {k: v for k, v in facts.references.items() if v}
    if not refs:
        return skipped("identity", "no character has a reference picture (character sheets or references/NAME.png)")
    shots = judged_shots(facts)
    if not shots or sampler is None:
        return skipped("identity", "no shot's speaker has a reference picture")
    encoder = sampler.encoder or FaceEncoder()
    ref_desc: dict[str, list[np.ndarray]] = {}
    for name, pics in refs.items():
        ref_desc[name] = reference_descriptors(encoder, pics)
    rows: list[dict[str, Any]] = []
    where: list[Span] = []
    worst = 0.0
    faceless = 0
    for shot in shots:
        faces = sampler.found.get(shot.id, [])
        speaker = next(sp for sp in shot.speakers if sp in refs)
        known = ref_desc.get(speaker) or []
        if not faces or not known:
            faceless += 1
            rows.append({"shot": shot.id, "speaker": speaker, "faces": len(faces), "distance": None})
            continue
        best = min(float(np.linalg.norm(f - r)) for _, f in faces for r in known)
        rows.append({"shot": shot.id, "speaker": speaker, "faces": len(faces), "distance": round(best, 3),
                     "boxes": [list(b) for b, _ in faces]})
        if best >= SAME_PERSON:
            where.append((shot.start, shot.end))
            worst = max(worst, best)
    flagged = [r for r in rows if r["distance"] is not None and r["distance"] >= SAME_PERSON]
    judged = [r for r in rows if r["distance"] is not None]
    if flagged:
        detail = "; ".join(f"shot {r['shot']}: the face is not {r['speaker']} (distance {r['distance']:.2f})" for r in flagged[:5])
        status = Status.FAIL
    elif judged:
        detail = f"{len(judged)} shot(s) show their speaker (largest distance {max(r['distance'] for r in judged):.2f})"
        status = Status.PASS
    else:
        detail = "no face found in the shots whose speaker has a reference"
        status = Status.WARN
    if faceless and judged:
        detail += f"; {faceless} shot(s) without a face to compare"
    value = round(max((r["distance"] for r in judged), default=0.0), 3)
    return CheckResult("identity", status, value, SAME_PERSON, where, detail=detail,
                       data={"shots": rows, "flagged": [r["shot"] for r in flagged]})
