"""Find a CJK font reportlab can embed in the PDF summary.

reportlab embeds TrueType outlines only. Candidates, in order: ``$REELFORGE_CJK_FONT``
(``PATH`` or ``PATH#INDEX`` for a .ttc), Debian's WenQuanYi Micro Hei / Zen Hei, then the Noto
Sans CJK collections (Debian ``fonts-noto-cjk`` and the pip package ``noto-cjk-sans-otc``).
The Noto collections use PostScript (CFF) outlines, which reportlab refuses; they are tried so
that a reportlab that learns CFF picks them up, and the refusal is reported. When nothing loads,
:func:`register_cjk_font` raises with every reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import LedgerError

log = logging.getLogger(__name__)

FONT_NAME = "ReelForgeCJK"


@dataclass(frozen=True, slots=True)
class FontChoice:
    path: Path
    subfont_index: int
    family: str


def _candidates() -> list[tuple[Path, int]]:
    """``$REELFORGE_CJK_FONT`` first, then the fonts the rest of ReelForge finds (core.fonts)."""
    from core.fonts import available_cjk_fonts

    out: list[tuple[Path, int]] = []
    env = os.environ.get("REELFORGE_CJK_FONT", "").strip()
    if env:
        path, _, index = env.partition("#")
        out.append((Path(path).expanduser(), int(index or 0)))
    out += [(f.path, f.index) for f in available_cjk_fonts()]
    return out


_registered: FontChoice | None = None


def register_cjk_font() -> FontChoice:
    """Register the first loadable CJK font with reportlab under :data:`FONT_NAME`."""
    global _registered
    if _registered is not None:
        return _registered
    try:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFError, TTFont
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("reportlab", "office") from e
    reasons: list[str] = []
    for path, index in _candidates():
        if not path.is_file():
            reasons.append(f"{path}: not installed")
            continue
        try:
            font = TTFont(FONT_NAME, str(path), subfontIndex=index)
        except (TTFError, OSError, ValueError) as e:
            reasons.append(f"{path}#{index}: {e}")
            log.info("CJK font %s#%d not usable by reportlab: %s", path, index, e)
            continue
        pdfmetrics.registerFont(font)
        family = font.face.name.decode("latin-1") if isinstance(font.face.name, bytes) else str(font.face.name)
        _registered = FontChoice(path, index, family)
        log.info("PDF font: %s (%s#%d)", family, path, index)
        return _registered
    raise LedgerError(
        "no CJK font that reportlab can embed was found for the PDF summary: " + "; ".join(reasons),
        hint="apt-get install fonts-wqy-microhei, or set REELFORGE_CJK_FONT=/path/to/font.ttf[#index] "
             "(TrueType outlines; OpenType/CFF fonts such as Noto Sans CJK are not supported by reportlab)")


def cjk_font_available() -> bool:
    """Whether :func:`register_cjk_font` finds a font (so a PDF summary can be written)."""
    try:
        register_cjk_font()
    except LedgerError:
        return False
    return True
