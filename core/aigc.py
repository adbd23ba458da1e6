"""Implicit AI-generated-content labels (GB 45438-2025 metadata), shared by every writer.

Video and audio carry a container tag ``AIGC`` whose value is JSON with the keys
``Label``, ``ContentProducer``, ``ProduceID``, ``ReservedCode1``, ``ContentPropagator``,
``PropagateID``, ``ReservedCode2``. MP4 files keep custom tags because every writer opens them
with ``movflags=use_metadata_tags``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

AIGC_KEY = "AIGC"
LABEL_AI_GENERATED = "1"  # the content is AI-generated/synthesised


@dataclass(frozen=True, slots=True)
class AIGCLabel:
    Label: str = LABEL_AI_GENERATED
    ContentProducer: str = "ReelForge"
    ProduceID: str = ""
    ReservedCode1: str = ""
    ContentPropagator: str = ""
    PropagateID: str = ""
    ReservedCode2: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


def make_label(producer: str, content_key: str) -> AIGCLabel:
    """A label whose ProduceID is derived from what was made (stable across re-runs)."""
    digest = hashlib.sha256(content_key.encode("utf-8")).hexdigest()
    return AIGCLabel(ContentProducer=producer, ProduceID=digest[:32], ReservedCode1=f"sha256:{digest}")


def label_metadata(label: AIGCLabel) -> dict[str, str]:
    return {AIGC_KEY: label.to_json(), "comment": "AI生成 / AI-generated content"}


def read_label(metadata: Mapping[str, str]) -> AIGCLabel | None:
    """Parse the ``AIGC`` tag from container metadata (any key case); None when absent or invalid."""
    for key, value in metadata.items():
        if key.upper() == AIGC_KEY:
            try:
                data = json.loads(value)
            except (TypeError, json.JSONDecodeError):
                return None
            if not isinstance(data, dict) or "Label" not in data:
                return None
            known = {k: str(v) for k, v in data.items() if k in AIGCLabel.__dataclass_fields__}
            return AIGCLabel(**known)
    return None
