"""The reading-speed model: how long a line takes to say, for planning episode lengths.

These are planning estimates; synthesis later measures the real durations from the TTS audio.

- Dialogue: 4.0 Chinese characters a second. Conversational Mandarin runs at about 4-5
  syllables (= characters) a second, and broadcast reading at 240-270 characters a minute
  (4.0-4.5 a second); short-drama dialogue is brisk, so 4.0 is a safe middle.
- Narration: 3.5 characters a second, the pace of audiobook storytelling (about 210 a minute)
  and of the default offline TTS voice (``core.config.TTSConfig.rate_wpm`` ~ 3.5 a second).
- Pauses: 0.25 s at each comma-like break inside a line, 0.4 s after a line that ends a
  sentence. Latin letters and digits count as one character each per word-ish chunk.
"""

from __future__ import annotations

import re

DIALOGUE_CPS = 4.0
NARRATION_CPS = 3.5
CLAUSE_PAUSE_S = 0.25
SENTENCE_PAUSE_S = 0.4
SHOT_PAD_S = 0.5  # breathing room at the cut: a reaction, a look
MIN_SHOT_S = 1.5
SILENT_SHOT_S = 2.0  # an establishing or insert shot with no line

_SPOKEN = re.compile(r"[\u4e00-\u9fff]|[A-Za-z]+|[0-9]+")
_CLAUSE = re.compile(r"[，,、；;：:—]")
_SENT = re.compile(r"[。！？!?…]$")


def spoken_units(text: str) -> int:
    """Syllable-ish units: one per Chinese character, one per Latin word or number."""
    return len(_SPOKEN.findall(text))


def line_seconds(text: str, kind: str = "dialogue") -> float:
    cps = NARRATION_CPS if kind == "narration" else DIALOGUE_CPS
    seconds = spoken_units(text) / cps
    seconds += CLAUSE_PAUSE_S * len(_CLAUSE.findall(text))
    if _SENT.search(text):
        seconds += SENTENCE_PAUSE_S
    return round(seconds, 2)


def shot_seconds(line_secs: list[float]) -> float:
    if not line_secs:
        return SILENT_SHOT_S
    return round(max(MIN_SHOT_S, sum(line_secs) + SHOT_PAD_S), 2)
