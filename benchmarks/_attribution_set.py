"""The hand-labelled attribution set: annotated texts and how a screenplay is scored against them.

An annotated file (``benchmarks/attribution/*.ann.txt``) is the story text with a label right
after each quoted passage: ``“周师傅，这块表还能修吗？”{林晚|vocative}``. Header lines give the
people (``#cast 林晚=晚晚; 老周=周师傅``: a name, then other names the same person goes by), the
places the narration names (``#places``) and forms of address that must never be a character
(``#address``). Stripping the labels gives the exact text the engine reads.

Scoring is on the screenplay the engine writes: a label is matched to the dialogue line whose
source span ends where the quoted passage ends. A predicted speaker is right when it names the
labelled person (the name or one of the names listed for that person); a passage with no line
is "dropped" and counts as wrong.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.screenplay import Series

HERE = Path(__file__).resolve().parent / "attribution"
_LABEL = re.compile(r"\{([^{}|]+)\|([a-z]+)\}")
PATTERNS = ("pre", "post", "middle", "beat", "pronoun", "alternation", "vocative", "minor", "colon")


@dataclass(slots=True)
class Label:
    end: int  # offset just past the quoted passage (its closing mark) in the clean text
    speaker: str
    pattern: str
    quote: str


@dataclass(slots=True)
class LabelledText:
    name: str
    title: str
    genre: str
    text: str
    labels: list[Label]
    people: dict[str, set[str]]  # canonical name -> every name the person goes by
    places: list[str]
    address: set[str]
    heldout: bool = False

    def person_of(self, name: str) -> str | None:
        for canon, names in self.people.items():
            if name in names:
                return canon
        return None


def load(path: Path, heldout: bool = False) -> LabelledText:
    raw = path.read_text(encoding="utf-8")
    head: dict[str, str] = {}
    body_lines: list[str] = []
    for line in raw.split("\n"):
        if line.startswith("#") and not body_lines:
            key, _, value = line[1:].partition(" ")
            head[key] = value.strip()
        else:
            body_lines.append(line)
    body = "\n".join(body_lines).lstrip("\n")
    labels: list[Label] = []
    out: list[str] = []
    pos = 0
    size = 0
    for m in _LABEL.finditer(body):
        chunk = body[pos:m.start()]
        out.append(chunk)
        size += len(chunk)
        before = "".join(out)
        if before.endswith(("”", "」", "』")):
            opener = {"”": "“", "」": "「", "』": "『"}[before[-1]]
            start = before.rfind(opener, 0, len(before) - 1)
            quote = before[start + 1:-1]
        else:  # colon speech: from the colon to here
            start = max(before.rfind("："), before.rfind(":"))
            quote = before[start + 1:]
        if m.group(2) not in PATTERNS:
            raise ValueError(f"{path.name}: unknown pattern {m.group(2)!r} after {quote[:20]!r}")
        labels.append(Label(end=size, speaker=m.group(1), pattern=m.group(2), quote=quote))
        pos = m.end()
    out.append(body[pos:])
    text = "".join(out)
    people: dict[str, set[str]] = {}
    for entry in head.get("cast", "").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        name, _, others = entry.partition("=")
        people[name.strip()] = {name.strip(), *(o.strip() for o in others.split(",") if o.strip())}
    lt = LabelledText(
        name=path.name.removesuffix(".ann.txt"), title=head.get("title", path.stem), genre=head.get("genre", ""),
        text=text, labels=labels, people=people,
        places=[p for p in head.get("places", "").split(",") if p],
        address={a for a in head.get("address", "").split(",") if a}, heldout=heldout,
    )
    for lab in labels:
        if lab.speaker not in people:
            raise ValueError(f"{path.name}: speaker {lab.speaker!r} is not in #cast")
    return lt


SETS = {"dev": ".", "heldout": "heldout", "fresh": "fresh", "fresh2": "fresh2"}


def load_all(which: str = "all") -> list[LabelledText]:
    """The labelled texts of one set: ``dev`` (the rules were developed on it), ``heldout`` (written
    before the first rules and scored once), ``fresh`` (written after the second round of rules,
    scored once, then used to fix what it showed), ``fresh2`` (written after the third round, scored
    once), or ``all``."""
    if which != "all" and which not in SETS:
        raise ValueError(f"unknown set {which!r}: use one of {', '.join([*SETS, 'all'])}")
    out: list[LabelledText] = []
    for name, folder in SETS.items():
        if which in ("all", name):
            out += [load(p, heldout=name != "dev") for p in sorted((HERE / folder).glob("*.ann.txt"))]
    return out


@dataclass(slots=True)
class Score:
    lines: int = 0
    right: int = 0
    dropped: int = 0  # quoted passages neither in the screenplay nor in the cut report
    cut: int = 0  # quoted passages cut for length (reported, with their speaker)
    by_pattern: Counter[str] = field(default_factory=Counter)
    right_by_pattern: Counter[str] = field(default_factory=Counter)
    speakers: int = 0  # labelled people who speak
    speakers_found: int = 0
    cast: int = 0  # characters in the screenplay
    cast_right: int = 0  # ... that are a labelled person (each person once)
    places: int = 0
    places_found: int = 0
    bad_cast: list[str] = field(default_factory=list)  # places, forms of address, fragments
    wrong: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name in ("lines", "right", "dropped", "cut", "speakers", "speakers_found", "cast", "cast_right", "places",
                     "places_found"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_pattern.update(other.by_pattern)
        self.right_by_pattern.update(other.right_by_pattern)
        self.bad_cast += other.bad_cast
        self.wrong += other.wrong


def score(lt: LabelledText, series: Series, cut: list[dict[str, object]] | None = None) -> Score:
    """Score a screenplay of ``lt.text``; ``cut`` is the engine's report of quoted lines cut for length."""
    sc = Score()
    said: dict[int, str] = {}
    for entry in cut or []:
        said[int(str(entry["end"]))] = str(entry["speaker"])
        sc.cut += 1
    for ep in series.episodes:
        for shot in ep.shots():
            for ln in shot.lines:
                if ln.kind != "narration" and ln.source is not None:
                    said[ln.source.end] = ln.speaker
    by_name = {c.name: c for c in series.characters}
    for lab in lt.labels:
        sc.lines += 1
        sc.by_pattern[lab.pattern] += 1
        got = said.get(lab.end - 1, said.get(lab.end))
        if got is None:
            sc.dropped += 1
            sc.wrong.append(f"{lt.name}: DROPPED {lab.quote[:24]} ({lab.speaker}, {lab.pattern})")
            continue
        names = {got}
        ch = by_name.get(got)
        if ch is not None:
            names |= set(ch.aliases)
        if names & lt.people[lab.speaker]:
            sc.right += 1
            sc.right_by_pattern[lab.pattern] += 1
        else:
            sc.wrong.append(f"{lt.name}: {lab.quote[:24]} -> {got} (label {lab.speaker}, {lab.pattern})")
    speaking = {lab.speaker for lab in lt.labels}
    mapped: dict[str, str] = {}
    for c in series.characters:
        sc.cast += 1
        person = lt.person_of(c.name) or next((p for a in c.aliases if (p := lt.person_of(a))), None)
        if c.name in lt.address or c.name in lt.places or person is None:
            sc.bad_cast.append(f"{lt.name}: {c.name}")
            continue
        if person in mapped.values():
            sc.bad_cast.append(f"{lt.name}: {c.name} (again {person})")
            continue
        mapped[c.name] = person
        sc.cast_right += 1
    sc.speakers = len(speaking)
    sc.speakers_found = len(speaking & set(mapped.values()))
    found_places = [loc.name for loc in series.locations]
    sc.places = len(lt.places)
    sc.places_found = sum(1 for p in lt.places if any(f == p or f.endswith(p) for f in found_places))
    return sc
