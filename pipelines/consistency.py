"""Character consistency: a reference sheet per character and a per-shot similarity score.

The score is the cosine similarity between a shot's keyframe and the sheets of the characters
in it, under an image encoder the user configures (any local transformers vision model: CLIP,
SigLIP, DINOv2... loaded with ``AutoModel`` from a folder). With no encoder configured the score
comes from a *classical descriptor* (HSV colour histogram + gradient-orientation histogram on a
4x4 grid), and every score says which method made it: the two scales are not comparable.

The encoders are listed in :data:`pipelines.ENCODERS` (``ENCODERS`` here); a plug-in registers as
the entry point ``encoder.<name>`` in ``reelforge.plugins`` and is chosen by giving its name where
a model folder would go (``[synth] image_encoder = "myencoder"``).
"""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, MissingDependencyError, ModelError
from pipelines import ENCODERS  # the registry, declared in pipelines/__init__.py

log = logging.getLogger(__name__)

SHEET_SUFFIX = "character reference sheet, full body, front view, plain light background, consistent design"


class ImageEncoder(ABC):
    name: str

    @abstractmethod
    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, d)`` L2-normalised embeddings of RGB uint8 images."""


class ClassicalDescriptor(ImageEncoder):
    """HSV histogram (18 hue x 4 saturation x 4 value bins) + 8-bin gradient orientations on a 4x4 grid."""

    name = "classical:hsv-hist+grad-hist"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import cv2

        rows = []
        for img in images:
            small = cv2.resize(np.ascontiguousarray(img[..., :3]), (128, 128), interpolation=cv2.INTER_AREA)
            hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, [18, 4, 4], [0, 180, 0, 256, 0, 256]).reshape(-1)
            hist = np.sqrt(hist / max(1.0, hist.sum()))  # Hellinger: cosine of sqrt-histograms
            gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
            gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
            gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
            mag = np.hypot(gx, gy)
            ang = (np.arctan2(gy, gx) % math.pi) / math.pi * 8  # unsigned orientation, 8 bins
            bins = np.minimum(ang.astype(np.int32), 7)
            cells = []
            for cy in range(4):
                for cx in range(4):
                    sl = (slice(cy * 32, (cy + 1) * 32), slice(cx * 32, (cx + 1) * 32))
                    cells.append(np.bincount(bins[sl].ravel(), weights=mag[sl].ravel(), minlength=8))
            grad: np.ndarray = np.concatenate(cells)
            grad = grad / max(1e-6, float(np.linalg.norm(grad)))
            vec = np.concatenate([hist / max(1e-6, float(np.linalg.norm(hist))), grad])
            rows.append(vec / max(1e-6, float(np.linalg.norm(vec))))
        return np.stack(rows).astype(np.float32)


class TransformersImageEncoder(ImageEncoder):
    """A local transformers vision model (``AutoModel`` + ``AutoImageProcessor`` from a folder)."""

    def __init__(self, path: str | os.PathLike[str], device: str = "auto") -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise InputError(f"image encoder {str(self.path)!r} is not a folder",
                             hint="point it at a saved transformers model (config.json + weights + preprocessor_config.json)")
        self.name = f"encoder:{self.path.name}"
        self.device_name = device
        self._model: Any = None
        self._processor: Any = None
        self._device: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            from transformers import AutoImageProcessor, AutoModel
        except ImportError as e:
            raise MissingDependencyError("transformers", "gpu") from e
        from core.device import resolve_device

        self._device = resolve_device(self.device_name)
        try:
            self._processor = AutoImageProcessor.from_pretrained(str(self.path), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(self.path), local_files_only=True).to(self._device).eval()
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot load the image encoder from {str(self.path)!r}: {e}") from e

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        self._load()
        pil = [Image.fromarray(np.ascontiguousarray(img[..., :3])) for img in images]
        inputs = self._processor(images=pil, return_tensors="pt").to(self._device)
        with torch.inference_mode():
            if hasattr(self._model, "get_image_features"):
                feats = self._model.get_image_features(**inputs)
                if not isinstance(feats, torch.Tensor):  # some versions return an output object
                    feats = getattr(feats, "image_embeds", None) or feats.pooler_output
            else:
                out = self._model(**inputs)
                feats = getattr(out, "pooler_output", None)
                if feats is None:
                    feats = out.last_hidden_state.mean(dim=1)
        arr = feats.float().cpu().numpy().reshape(len(images), -1)
        return arr / np.maximum(1e-6, np.linalg.norm(arr, axis=1, keepdims=True))


def get_encoder(path: str | None, device: str = "auto") -> ImageEncoder:
    """The encoder for ``path``: none -> ``classical``; a folder -> ``transformers`` on it; the
    name of a registered encoder (a plug-in's, say) that is not a folder -> that encoder, built
    with ``device=``."""
    if not path:
        return ENCODERS.create("classical")
    if path in ENCODERS and not Path(path).expanduser().exists():
        if path == "classical":
            return ENCODERS.create(path)
        encoder = ENCODERS.create(path, device=device)
        if not isinstance(encoder, ImageEncoder):
            raise InputError(f"image encoder plug-in {path!r} made a {type(encoder).__name__}, not an ImageEncoder",
                             hint="a plug-in must subclass pipelines.consistency.ImageEncoder")
        return encoder
    return ENCODERS.create("transformers", path, device)


@dataclass(frozen=True, slots=True)
class ConsistencyScore:
    score: float  # mean cosine similarity to the sheets of the characters in the shot
    method: str  # the encoder's name: scores from different methods are not comparable
    per_character: dict[str, float]


def score_shot(encoder: ImageEncoder, keyframe: np.ndarray, sheets: dict[str, np.ndarray]) -> ConsistencyScore | None:
    """Similarity of a keyframe to each character's sheet; None when no character has a sheet."""
    if not sheets:
        return None
    names = sorted(sheets)
    emb = encoder.embed([keyframe] + [sheets[n] for n in names])
    sims = emb[1:] @ emb[0]
    per = {n: round(float(s), 4) for n, s in zip(names, sims, strict=True)}
    return ConsistencyScore(round(float(np.mean(sims)), 4), encoder.name, per)


def sheet_prompt(name: str, appearance: str, style: str = "") -> str:
    look = appearance.strip() or name
    return ", ".join(p for p in (look, style.strip(), SHEET_SUFFIX) if p)


def character_prompt(base: str, characters: Sequence[tuple[str, str]]) -> str:
    """The shot prompt with every present character's appearance text carried into it."""
    parts = [base.strip()] if base.strip() else []
    for name, appearance in characters:
        if appearance.strip() and appearance.strip() not in base:
            parts.append(f"{name}: {appearance.strip()}")
    return ", ".join(parts)
