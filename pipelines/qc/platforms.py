"""Delivery presets per platform: loudness target, picture format, and the UI that covers the picture.

Loudness. None of the five platforms publishes a loudness target for uploads (we searched their
creator and ad documentation). We hold every episode to -16 LUFS integrated, the level AES
TD1004 recommends for streaming to mobile devices and what our mixer aims at, with a true peak
of at most -1 dBTP (AES TD1004's maximum). Tolerance: 1 LU either way.

UI overlay regions (where the app draws over a 9:16 picture), as fractions of the frame. No
platform publishes numbers: TikTok (the international app of Douyin's maker, same layout) ships
its ad safe zones only as template images (ads.tiktok.com help, "TikTok Auction In-Feed Ads":
"Downloadable safe zone files"), and Douyin, Kuaishou, WeChat Channels, Bilibili and Hongguo
publish none we could find. The regions below are therefore approximations drawn from
third-party guides measured on the same layouts, named here so they can be checked and changed:

* top bar: 10 % of the height (the "safe-zone-qa" guide, 170 px of 1920 for TikTok/Reels/Shorts:
  status bar, tabs, search);
* right action column (avatar, like, comment, favourite, share): 15 % of the width (same guide,
  162 px of 1080) from about 40 % of the height down to the bottom info;
* bottom info (account, caption, music, episode bar): 20 % of the height (same guide, 384 px of
  1920), left 80 % of the width; Google's vertical-ad safe zone (bottom 672 px, right 192 px, via
  the Shotstack guide "Vertical video safe zones") is stricter because it also covers ad buttons.

Per platform: Douyin and Kuaishou use the three regions as above; WeChat Channels puts its like /
share row at the bottom instead of a right column, so its bottom band spans the full width;
Bilibili's vertical player has the Douyin layout; Hongguo (short dramas) adds an episode bar, so
its bottom band is taller (24 %). Everything here is data: pass other presets to the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import InputError


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle of the frame in fractions (x0, y0, x1, y1), with what the app draws there."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (int(self.x0 * width), int(self.y0 * height), int(round(self.x1 * width)), int(round(self.y1 * height)))


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    title: str
    loudness_lufs: float = -16.0
    loudness_tolerance: float = 1.0
    true_peak_dbtp: float = -1.0
    size: tuple[int, int] = (1080, 1920)  # recommended (w, h)
    min_size: tuple[int, int] = (720, 1280)
    aspects: tuple[tuple[int, int], ...] = ((9, 16),)
    fps: tuple[float, float] = (24.0, 60.0)
    video_codecs: tuple[str, ...] = ("h264", "hevc")
    audio_codecs: tuple[str, ...] = ("aac",)
    min_video_kbps: int = 500  # below this the platform's own re-encode shows; a warning only
    max_seconds: float = 15 * 60
    regions: tuple[Region, ...] = field(default_factory=tuple)


TOP_BAR = Region("top bar (status, tabs, search)", 0.0, 0.0, 1.0, 0.10)
RIGHT_COLUMN = Region("right column (avatar, like, comment, share)", 0.85, 0.40, 1.0, 0.80)
BOTTOM_INFO = Region("bottom info (account, caption, music)", 0.0, 0.80, 0.80, 1.0)
BOTTOM_BAR_FULL = Region("bottom bar (account, caption, like and share row)", 0.0, 0.80, 1.0, 1.0)
BOTTOM_EPISODES = Region("bottom info and episode bar", 0.0, 0.76, 0.80, 1.0)
SOURCES = ("TikTok ad safe zones: template files only (ads.tiktok.com help, In-Feed Ads)",
           "safe-zone-qa guide (motion-graphics-skills): top 10 %, right 15 %, bottom 20 % of 1080x1920",
           "Shotstack, 'Vertical video safe zones': Google vertical ads 288/672/48/192 px, Meta Reels 14/35/6 %")

PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform("douyin", "抖音 Douyin", regions=(TOP_BAR, RIGHT_COLUMN, BOTTOM_INFO)),
    Platform("kuaishou", "快手 Kuaishou", regions=(TOP_BAR, RIGHT_COLUMN, BOTTOM_INFO)),
    Platform("channels", "微信视频号 WeChat Channels", regions=(TOP_BAR, BOTTOM_BAR_FULL)),
    Platform("bilibili", "哔哩哔哩 Bilibili", aspects=((9, 16), (16, 9)), min_size=(720, 1280),
             regions=(TOP_BAR, RIGHT_COLUMN, BOTTOM_INFO)),
    Platform("hongguo", "红果短剧 Hongguo", regions=(TOP_BAR, RIGHT_COLUMN, BOTTOM_EPISODES)),
)}


def get_platform(name: str) -> Platform:
    try:
        return PLATFORMS[name.lower()]
    except KeyError:
        raise InputError(f"unknown platform {name!r}", hint=f"use one of {', '.join(PLATFORMS)}") from None
