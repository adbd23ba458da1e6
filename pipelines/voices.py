"""Casting: one distinct offline voice per character, chosen from gender and age, the same in every episode.

The script agent writes a voice *hint* for each character (``zh-female-adult``, ``zh-male-old``,
``zh-male-child``); a person may instead name a voice outright (``cmn+f2``, or a service's voice
name for the HTTP engine), which is kept as written. From a hint the cast picks an espeak-ng
variant of the gender and age (the variants' own files say which: ``m1``/``croak``/``grandpa``
are old men, ``f1``/``grandma`` old women), a pitch and a speaking rate in that group's range.

Stable: the choice depends only on the character's name and on the characters listed before it
in the screenplay, so adding a character at the end changes nobody's voice, and every episode of
a series hears the same voices. Distinct: a character never gets a (variant, pitch) another
character of the series already has; when a group runs out of variants the pitch moves instead.
The narrator keeps the plain Mandarin voice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pipelines.tts import VoiceSpec

NARRATOR_VOICE = VoiceSpec(voice="cmn", rate_wpm=160, pitch=45)
BASE_LANGUAGE = "cmn"

_HINT = re.compile(r"^(?:[a-z]{2,3}-)?(male|female|man|woman|m|f)(?:-(child|kid|young|adult|old|elder))?$", re.I)
_AGES = {"child": "child", "kid": "child", "young": "adult", "adult": "adult", "old": "old", "elder": "old"}


@dataclass(frozen=True, slots=True)
class VoiceGroup:
    """espeak-ng variants for one gender and age, with the pitch (0-99) and rate (words/min) ranges."""

    variants: tuple[str, ...]
    pitch: tuple[int, int]
    rate: tuple[int, int]


# Variants by the gender and age their espeak-ng files declare (``espeak-ng --voices=variant``);
# there are no child voices, so children get light variants at a high pitch and a quicker rate.
GROUPS: dict[tuple[str, str], VoiceGroup] = {
    # m6 is left out: it measured close to the plain voice the narrator uses (pipelines.qc.speech)
    ("male", "adult"): VoiceGroup(("m3", "m2", "m4", "m7", "m5"), (38, 56), (165, 182)),
    ("male", "old"): VoiceGroup(("m1", "croak", "grandpa", "m8"), (22, 38), (140, 158)),
    ("male", "child"): VoiceGroup(("m7", "m3"), (78, 92), (180, 196)),
    ("female", "adult"): VoiceGroup(("f2", "f3", "f4", "f5"), (58, 76), (168, 186)),
    ("female", "old"): VoiceGroup(("f1", "grandma"), (44, 58), (145, 162)),
    ("female", "child"): VoiceGroup(("f5", "f4"), (84, 98), (182, 198)),
}
_PITCH_STEP = 9  # espeak pitch units between two characters that share a variant (about 2 semitones)


class CharacterLike(Protocol):
    name: str
    voice: str
    aliases: list[str]


@dataclass(frozen=True, slots=True)
class Casting:
    """Who speaks with which voice, and why (for the QC report and the studio)."""

    voices: dict[str, VoiceSpec]
    reasons: dict[str, str]


def parse_hint(hint: str) -> tuple[str, str] | None:
    """(gender, age) from a hint such as ``zh-female-old``; None when it names a voice instead."""
    m = _HINT.match(hint.strip())
    if not m:
        return None
    g = m.group(1).lower()
    gender = "female" if g in ("female", "woman", "f") else "male"
    return gender, _AGES.get((m.group(2) or "adult").lower(), "adult")


def _digest(name: str) -> int:
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16)


def _pick(name: str, group: VoiceGroup, taken: set[tuple[str, int]], base: str) -> VoiceSpec:
    digest = _digest(name)
    lo, hi = group.pitch
    span = hi - lo + 1
    rate = group.rate[0] + (digest >> 24) % (group.rate[1] - group.rate[0] + 1)
    first = digest % len(group.variants)
    order = [group.variants[(first + i) % len(group.variants)] for i in range(len(group.variants))]
    pitch0 = lo + (digest >> 8) % span
    # every variant at the name's own pitch first, then the same variants a pitch step away
    for shift in range(0, span, _PITCH_STEP):
        for sign in (1, -1) if shift else (1,):
            pitch = lo + (pitch0 - lo + sign * shift) % span
            for variant in order:
                if not any(v == variant and abs(p - pitch) < _PITCH_STEP for v, p in taken):
                    taken.add((variant, pitch))
                    return VoiceSpec(voice=f"{base}+{variant}", rate_wpm=rate, pitch=pitch)
    # more characters of one gender and age than variants x pitch steps: share, but stably
    variant = order[0]
    taken.add((variant, pitch0))
    return VoiceSpec(voice=f"{base}+{variant}", rate_wpm=rate, pitch=pitch0)


def cast_voices(characters: Iterable[CharacterLike], *, base: str = BASE_LANGUAGE,
                narrator: str = "") -> Casting:
    """Voices for a series' characters (and their aliases) plus the narrator under ``narrator``.

    A character whose ``voice`` is not a gender/age hint keeps that voice as written (default rate
    and pitch); an empty voice counts as an adult of a gender drawn from the name.
    """
    voices: dict[str, VoiceSpec] = {narrator: NARRATOR_VOICE}
    reasons: dict[str, str] = {narrator: "narrator: the plain Mandarin voice"}
    taken: set[tuple[str, int]] = set()
    chars = list(characters)
    for ch in chars:  # named voices first, so hinted characters steer clear of them
        if ch.voice and parse_hint(ch.voice) is None:
            voices[ch.name] = VoiceSpec(voice=ch.voice, rate_wpm=170, pitch=50)
            reasons[ch.name] = f"voice {ch.voice!r} named in the screenplay"
            variant = ch.voice.partition("+")[2]
            if variant:
                taken.add((variant, 50))
    for ch in chars:
        if ch.name in voices:
            continue
        parsed = parse_hint(ch.voice) if ch.voice else None
        if parsed is None:
            parsed = ("female" if _digest(ch.name) & 1 else "male", "adult")
            why = "no voice hint: gender drawn from the name"
        else:
            why = f"hint {ch.voice!r}"
        spec = _pick(ch.name, GROUPS[parsed], taken, base)
        voices[ch.name] = spec
        reasons[ch.name] = f"{why} -> {parsed[0]} {parsed[1]}: {spec.voice}, pitch {spec.pitch}, {spec.rate_wpm} wpm"
    for ch in chars:
        for alias in ch.aliases:
            voices.setdefault(alias, voices[ch.name])
    return Casting(voices, reasons)


def shared_voices(voices: Mapping[str, VoiceSpec], speakers: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of ``speakers`` given the very same voice settings (the cast's own promise, checked)."""
    names = [s for s in dict.fromkeys(speakers) if s in voices]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if voices[a] == voices[b]]
