"""Find a CJK font for subtitles, cards and PDF reports: Debian's, then pip-installed ones.

Every font found comes with its licence, so the usage records can name it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.errors import ReelForgeError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FontInfo:
    path: Path
    name: str
    licence: str
    source: str  # "config", "debian" or "pip:<package>"
    index: int = 0  # face index inside a .ttc collection


_SYSTEM = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "WenQuanYi Micro Hei", "Apache-2.0 OR GPL-3.0-with-font-exception", "debian", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "WenQuanYi Zen Hei", "GPL-2.0-with-font-exception", "debian", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "Noto Sans CJK", "OFL-1.1", "debian", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", "Noto Serif CJK", "OFL-1.1", "debian", 2),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", "AR PL UMing", "Arphic Public License", "debian", 0),
    ("/System/Library/Fonts/PingFang.ttc", "PingFang SC", "Apple system font", "system", 0),
    ("C:/Windows/Fonts/msyh.ttc", "Microsoft YaHei", "Windows system font", "system", 0),
)

_PIP = (
    ("noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc", "Noto Sans CJK", "OFL-1.1"),
    ("manimgx_fonts_cjk", "NotoSansCJK-VF.otf.ttc", "Noto Sans CJK (variable)", "OFL-1.1"),
)


class FontNotFoundError(ReelForgeError):
    pass


def available_cjk_fonts() -> list[FontInfo]:
    fonts: list[FontInfo] = []
    env = os.environ.get("REELFORGE_FONT")
    if env and Path(env).is_file():
        fonts.append(FontInfo(Path(env), Path(env).stem, "as configured (check its licence)", "config"))
    for path, name, lic, src, index in _SYSTEM:  # index: the Simplified Chinese face of a collection
        if Path(path).is_file():
            fonts.append(FontInfo(Path(path), name, lic, src, index))
    for package, filename, name, lic in _PIP:
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                candidate = Path(loc) / filename
                if candidate.is_file():
                    # index 2 of the Noto CJK collection is the Simplified Chinese face
                    fonts.append(FontInfo(candidate, name, lic, f"pip:{package}", index=2 if "Regular" in filename else 0))
    return fonts


@lru_cache(maxsize=1)
def find_cjk_font() -> FontInfo:
    fonts = available_cjk_fonts()
    if not fonts:
        raise FontNotFoundError(
            "no CJK font found for Chinese subtitles",
            hint="apt-get install fonts-wqy-microhei, or pip install noto-cjk-sans-otc, or set REELFORGE_FONT=/path/font.ttf",
        )
    log.debug("CJK font: %s (%s)", fonts[0].name, fonts[0].path)
    return fonts[0]
