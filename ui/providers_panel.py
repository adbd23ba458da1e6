"""The studio's generation-provider picker and its quote before Make (plain functions; the Gradio
wiring is in :mod:`ui.app`).

A person picks an image, a video and a voice model (``PROVIDER:MODEL``, or the local engines),
optionally a budget in yuan, and sees what the episodes will cost, priced from the price book,
before anything billable is sent. Make with a paid provider first shows that quote and goes
ahead only when Make is pressed again with the same choices.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ReelForgeError

LOCAL = ""  # the value of "the local engines" in each picker
LOCAL_LABEL = {"image": "本地引擎 local engines (no cost)", "video": "不生成视频 no video (keyframe motion)",
               "voice": "本地配音 local TTS (no cost)"}


def provider_choices(config: Any, kind: str) -> list[tuple[str, str]]:
    """(label, ``PROVIDER:MODEL``) for every model of ``kind`` the registered providers offer; the
    label says whether the provider's key is set (never the key itself)."""
    from pipelines.providers import catalog
    from pipelines.providers.secrets import get_secret

    out = [(LOCAL_LABEL[kind], LOCAL)]
    for info in catalog(config):
        models = [m for m in info.models if m.kind == kind]
        if not models or not info.available:
            continue
        missing = []
        for var in info.env_keys:
            try:
                if get_secret(var) is None:
                    missing.append(var)
            except ReelForgeError:  # an unreadable secrets file: shown as unset, the check says why
                missing.append(var)
        state = "✓" if not missing else f"✗ 未设置 set {', '.join(missing)}"
        for m in sorted(models, key=lambda m: (not m.default, m.name)):
            out.append((f"{info.name} · {m.name} · {state}", f"{info.name}:{m.name}"))
    return out


def wants_providers(image: str, video: str, voice: str) -> bool:
    return any((v or "").strip() for v in (image, video, voice))


def choice_key(source: str, episodes: int, seconds: float, size: Sequence[int], image: str, video: str,
               voice: str, budget: str) -> str:
    """What a quote was made for: Make goes ahead without another quote only when nothing changed."""
    blob = json.dumps([source, int(episodes), float(seconds), list(size), image or "", video or "", voice or "",
                       (budget or "").strip()], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def quote_markdown(quotes: Sequence[Any], budget: str = "") -> str:
    """The episodes' quotes as the studio shows them: each table, then the total against the budget."""
    from decimal import Decimal

    parts = ["**报价 Quote**（按价目表估算，尚未发送任何计费请求 · priced from the price book; nothing billable "
             "has been sent）", ""]
    total, priced = 0, True
    for q in quotes:
        parts.append("```\n" + q.table() + "\n```")
        total += q.cost_fen
        priced = priced and q.priced
    yuan = f"{Decimal(total) / 100:.2f}"
    line = f"合计 total ¥ {yuan}" + ("" if priced else "（另有未定价项目 + unpriced items: see the notes）")
    if (budget or "").strip():
        line += f" · 预算 budget ¥ {budget.strip()}"
        try:
            if Decimal(budget.strip()) * 100 < total:
                line += " — 超出预算，生成会在超出前停止 · over budget: Make stops before the call that would exceed it"
        except ArithmeticError:
            pass
    parts.append(line)
    return "\n".join(parts)


def quote_for(studio: Any, source: Path, settings: Any) -> str:
    """``make --dry-run`` for the studio: the screenplay (free with the offline engine) and each
    episode's quote, as Markdown."""
    return quote_markdown(studio.quote_make(source, settings), settings.budget)


VOICE_HEADERS = ["角色 character", "定位 role", "配音 voice (screenplay)", "默认 default for the model"]


def voice_rows(series: Any, voice_spec: str = "") -> list[list[str]]:
    """One row per character: the voice the screenplay gives it, and the voice the chosen voice
    model would cast it with by default (from gender and age)."""
    from agents.synth.providers import cast_provider_voices
    from pipelines.providers import PROVIDERS, parse_spec

    defaults: dict[str, Any] = {}
    if (voice_spec or "").strip():
        provider, _ = parse_spec(voice_spec, "voice")
        table = getattr(PROVIDERS.factory(provider), "voices", None) or {("", ""): ("",)}
        # the default, not the screenplay's own: cast as if no voice were given
        bare = series.model_copy(deep=True)
        for ch in bare.characters:
            ch.voice = ""
        defaults = cast_provider_voices(bare, provider, table)
    return [[ch.name, ch.role, ch.voice, defaults[ch.name].voice if ch.name in defaults else ""]
            for ch in series.characters]


def apply_voice_rows(series: Any, rows: Sequence[Sequence[Any]]) -> int:
    """Write the voice column of ``rows`` into the screenplay's characters; how many changed. A
    row naming no character of the screenplay is refused (nothing is changed then)."""
    from core.errors import InputError

    by_name = {ch.name: ch for ch in series.characters}
    wanted: dict[str, str] = {}
    for row in rows:
        if not row or not str(row[0] or "").strip():
            continue
        name = str(row[0]).strip()
        if name not in by_name:
            raise InputError(f"no character {name!r} in the screenplay",
                             hint="edit only the voice column; load the characters again")
        wanted[name] = str(row[2] if len(row) > 2 and row[2] is not None else "").strip()
    changed = 0
    for name, voice in wanted.items():
        if by_name[name].voice != voice:
            by_name[name].voice = voice
            changed += 1
    return changed


def sheet_dir(project: Path) -> Path:
    """Where a project's character reference sheets are (shared by its episodes)."""
    return project / "synth" / "characters"


def sheet_items(project: Path) -> list[tuple[str, str]]:
    """(picture, "name · status") for each character sheet of a project, for the review gallery."""
    from agents.synth.job import safe_file_name
    from agents.synth.review import load_sheets

    folder = sheet_dir(project)
    out = []
    for name, rec in sorted(load_sheets(folder).items()):
        png = folder / f"{safe_file_name(name)}.png"
        if png.exists():
            mark = {"approved": "✓", "pending": "待审 pending"}.get(str(rec.get("status")), str(rec.get("status")))
            out.append((str(png), f"{name} · {mark}"))
    return out


def review_sheet_in(project: Path, name: str, action: str) -> str:
    """Approve or regenerate a character's sheet; the message the studio shows."""
    from agents.synth.job import safe_file_name
    from agents.synth.review import review_sheet
    from core.paths import safe_join

    folder = sheet_dir(project)
    review_sheet(folder, name, action, png=safe_join(folder, f"{safe_file_name(name)}.png"))
    return {"approve": f"{name} 的设定图已通过 · sheet approved",
            "regenerate": f"{name} 的设定图将用新种子重做 · a new sheet on the next Make"}[action]
