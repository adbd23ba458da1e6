"""The licence of a local model, read from its model card or its LICENSE file.

Every usage record of a local model (diffusers keyframes and image-to-video, transformers
language and vision models) names the model's licence, because the licence trail is what an
auditor reads next to the spend. The licence comes from, in order:

1. the model card's front matter (``README.md``, Hugging Face format): ``license: apache-2.0``,
   or ``license: other`` with ``license_name`` (and ``license_link``);
2. a licence file beside the weights (``LICENSE``, ``LICENSE.md``, ``LICENSE.txt``, ``LICENCE``),
   recognised by its text (Apache-2.0, MIT, BSD, GPL, CreativeML OpenRAIL-M...) or named by its
   first line;
3. otherwise ``unknown: ...`` naming the folder that has neither, so the gap is visible in the
   records and can be fixed by adding the card.

A path to a single file (a ``.safetensors`` checkpoint, a ``.gguf``) is looked up in its folder.
:func:`is_placeholder_licence` recognises text that only defers ("see the model card", "n/a"):
such text is never a licence.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CARD_NAMES = ("README.md", "readme.md", "README.MD")
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md", "LICENCE.txt", "license.txt")
UNKNOWN_PREFIX = "unknown: "

_PLACEHOLDER = re.compile(
    r"^(?:|n/?a|none|null|unknown|tbd|todo|\?+|other|see|see (?:the )?(?:model )?card|see (?:the )?licen[cs]e"
    r"|see .*|per the model card|check (?:the )?(?:model )?card)$", re.IGNORECASE)

# text of a licence file -> its SPDX id (first match wins)
_LICENCE_TEXTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Apache-2.0", re.compile(r"Apache License.{0,200}Version 2\.0", re.S | re.I)),
    ("CreativeML-OpenRAIL-M", re.compile(r"CreativeML Open RAIL[- ]M", re.I)),
    ("OpenRAIL++-M", re.compile(r"Open RAIL\+\+[- ]M", re.I)),
    ("GPL-3.0", re.compile(r"GNU GENERAL PUBLIC LICENSE.{0,200}Version 3", re.S | re.I)),
    ("LGPL-3.0", re.compile(r"GNU LESSER GENERAL PUBLIC LICENSE.{0,200}Version 3", re.S | re.I)),
    ("MIT", re.compile(r"\bMIT License\b|Permission is hereby granted, free of charge", re.I)),
    ("BSD-3-Clause", re.compile(r"Redistribution and use in source and binary forms.{0,2000}Neither the name",
                                re.S | re.I)),
    ("BSD-2-Clause", re.compile(r"Redistribution and use in source and binary forms", re.I)),
    ("CC-BY-4.0", re.compile(r"Creative Commons Attribution 4\.0 International", re.I)),
    ("CC-BY-NC-4.0", re.compile(r"Creative Commons Attribution-NonCommercial 4\.0", re.I)),
)


def is_placeholder_licence(text: str) -> bool:
    """True for text that names no licence: empty, "n/a", "unknown", "see the model card", "see X"..."""
    return bool(_PLACEHOLDER.match((text or "").strip().strip("'\"").strip()))


@dataclass(frozen=True, slots=True)
class ModelLicence:
    """A model's licence and the file it was read from (empty when no file names one)."""

    licence: str
    source: str = ""

    @property
    def known(self) -> bool:
        return bool(self.source)

    def __str__(self) -> str:
        return self.licence


def _folder(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    return p if p.is_dir() else p.parent


def _front_matter(text: str) -> dict[str, str | list[str]]:
    """Top-level keys of a YAML front matter block (the subset model cards use: scalars and lists)."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    out: dict[str, str | list[str]] = {}
    key = ""
    for line in lines[1:]:
        if line.strip() in ("---", "..."):
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] not in " \t-" and ":" in line:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if value.startswith("[") and value.endswith("]"):
                out[key] = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
            elif value:
                out[key] = value.strip("'\"")
            else:
                out[key] = []
        elif key and line.lstrip().startswith("- "):
            current = out.get(key)
            item = line.lstrip()[2:].strip().strip("'\"")
            if isinstance(current, list) and item:
                current.append(item)
    return out


def _from_card(card: Path) -> str:
    try:
        head = card.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return ""
    meta = _front_matter(head)
    raw = meta.get("license", "")
    ids = [raw] if isinstance(raw, str) else list(raw)
    ids = [i for i in ids if i and not is_placeholder_licence(i)]
    name = meta.get("license_name", "")
    link = meta.get("license_link", "")
    if isinstance(name, str) and name and not is_placeholder_licence(name):
        text = f"other: {name}"
        if isinstance(link, str) and link:
            text += f" ({link})"
        return ", ".join([*ids, text]) if ids else text
    return ", ".join(ids)


def _from_licence_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return ""
    for spdx, pattern in _LICENCE_TEXTS:
        if pattern.search(text):
            return spdx
    first = next((ln.strip().strip("#").strip() for ln in text.splitlines() if ln.strip().strip("#").strip()), "")
    if not first or is_placeholder_licence(first):
        return ""
    return f"{first[:100]} ({path.name})"


def read_model_licence(path: str | os.PathLike[str]) -> ModelLicence:
    """The licence of the model at ``path`` (a model folder, or a single weights file in one)."""
    folder = _folder(path)
    for name in CARD_NAMES:
        card = folder / name
        if card.is_file():
            found = _from_card(card)
            if found:
                return ModelLicence(found, str(card))
            break
    for name in LICENCE_FILES:
        file = folder / name
        if file.is_file():
            found = _from_licence_file(file)
            if found:
                return ModelLicence(found, str(file))
    return ModelLicence(f"{UNKNOWN_PREFIX}no licence in a model card (README.md front matter) or a LICENSE file "
                        f"in {folder}")


def model_card_licence(path: str | os.PathLike[str]) -> str:
    """The licence text of :func:`read_model_licence` (what a usage record's ``licence`` holds)."""
    return read_model_licence(path).licence
