"""The QC report as one self-contained HTML page: the table of checks, the loudness curve, flagged frames.

No scripts and no external files: the curve is inline SVG, the thumbnails are JPEG data URIs,
so the page opens anywhere (a browser, the studio, an e-mail attachment) and cannot phone home.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipelines.qc.base import CheckResult

_COLOURS = {"pass": "#1b873f", "warn": "#b7791f", "fail": "#c53030", "skip": "#718096"}
_LABELS = {"pass": "通过 pass", "warn": "注意 warn", "fail": "未通过 fail", "skip": "跳过 skip"}


def jpeg_data_uri(rgb: np.ndarray, quality: int = 80) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def loudness_svg(curve: Sequence[Sequence[float]], target: float, tolerance: float, width: int = 720,
                 height: int = 180) -> str:
    """Short-term loudness over time with the target band, as inline SVG."""
    pts = [(float(t), float(s)) for t, _, s in curve if s > -70]
    if len(pts) < 2:
        return "<p>（无响度曲线 no loudness curve: the sound is silent or too short）</p>"
    t_max = max(t for t, _ in pts) or 1.0
    lo, hi = -40.0, 0.0

    def x(t: float) -> float:
        return 40 + (width - 50) * t / t_max

    def y(v: float) -> float:
        return 10 + (height - 30) * (hi - max(lo, min(hi, v))) / (hi - lo)

    band = (f'<rect x="40" y="{y(target + tolerance):.1f}" width="{width - 50}" '
            f'height="{y(target - tolerance) - y(target + tolerance):.1f}" fill="#c6f6d5"/>')
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
    ticks = "".join(f'<text x="4" y="{y(v) + 4:.1f}" font-size="10">{v:g}</text>'
                    f'<line x1="38" x2="{width - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e2e8f0"/>'
                    for v in (-40, -30, -20, -10, 0))
    secs = "".join(f'<text x="{x(t):.1f}" y="{height - 4}" font-size="10" text-anchor="middle">{t:.0f}s</text>'
                   for t in np.linspace(0, t_max, 7))
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="short-term loudness">{band}{ticks}{secs}'
            f'<polyline points="{line}" fill="none" stroke="#2b6cb0" stroke-width="1.5"/></svg>'
            f'<p class="small">短期响度 short-term loudness (LUFS, 3 s window); the green band is the target '
            f'{target:g} ± {tolerance:g} LU</p>')


def regions_svg(frame: Sequence[int], regions: Sequence[dict[str, Any]], hits: Sequence[dict[str, Any]],
                height: int = 240) -> str:
    """The platform's UI regions on the frame, with the mark and the text boxes that reach into them."""
    w, h = int(frame[0]), int(frame[1])
    width = max(1, int(height * w / h))
    sx, sy = width / w, height / h
    parts = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#2d3748"/>']
    for r in regions:
        x0, y0, x1, y1 = r["box"]
        parts.append(f'<rect x="{x0 * sx:.1f}" y="{y0 * sy:.1f}" width="{(x1 - x0) * sx:.1f}" '
                     f'height="{(y1 - y0) * sy:.1f}" fill="#f6ad55" fill-opacity="0.45">'
                     f'<title>{html.escape(r["name"])}</title></rect>')
    for hit in hits[:40]:
        x0, y0, x1, y1 = hit["box"]
        parts.append(f'<rect x="{x0 * sx:.1f}" y="{y0 * sy:.1f}" width="{(x1 - x0) * sx:.1f}" '
                     f'height="{(y1 - y0) * sy:.1f}" fill="none" stroke="#e53e3e" stroke-width="1.5"/>')
    return f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}">{"".join(parts)}</svg>'


def render_html(report: dict[str, Any], thumbnails: Sequence[tuple[str, float, str]]) -> str:
    """``report`` is the report's JSON; ``thumbnails`` are (check id, time s, data URI)."""
    esc = html.escape
    checks = [CheckResult.from_json(c) for c in report["checks"]]
    verdict = "通过 PASSED" if report["passed"] else "未通过 FAILED"
    rows = []
    for c in checks:
        where = ", ".join(f"{a:.1f}–{b:.1f}s" for a, b in c.where[:8]) + (" …" if len(c.where) > 8 else "")
        rows.append(f'<tr><td><code>{esc(c.id)}</code></td>'
                    f'<td style="color:{_COLOURS.get(c.status, "#000")};font-weight:bold">{_LABELS.get(c.status, c.status)}</td>'
                    f'<td>{esc(_fmt(c.value))}</td><td>{esc(_fmt(c.limit))}</td><td>{esc(where)}</td>'
                    f'<td>{esc(c.detail)}</td></tr>')
    curve = ""
    loud = next((c for c in checks if c.id == "loudness"), None)
    if loud is not None and loud.data.get("curve"):
        lim = loud.limit if isinstance(loud.limit, list) and len(loud.limit) == 2 else [-17.0, -15.0]
        curve = loudness_svg(loud.data["curve"], (lim[0] + lim[1]) / 2, (lim[1] - lim[0]) / 2)
    zone = next((c for c in checks if c.id == "safe_zone"), None)
    zone_svg = ""
    if zone is not None and zone.data.get("regions"):
        zone_svg = (f"<h2>平台界面区域 Platform UI regions</h2>{regions_svg(zone.data['frame'], zone.data['regions'], zone.data.get('hits', []))}"
                    '<p class="small">orange: where the app draws over the picture; red: the mark or text found there</p>')
    thumbs = "".join(f'<figure><img src="{uri}" alt="{esc(cid)} at {t:.1f}s"><figcaption><code>{esc(cid)}</code> '
                     f'{t:.1f}s</figcaption></figure>' for cid, t, uri in thumbnails)
    fixes = "".join(f"<li>{esc(f.get('check', ''))}: {esc(f.get('action', ''))} — {esc(_fmt({k: v for k, v in f.items() if k not in ('check', 'action')}))}</li>"
                    for f in report.get("fixes", []))
    notes = "".join(f"<li>{esc(n)}</li>" for n in report.get("notes", []))
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>QC 第{report['episode']}集 · {esc(report['platform'])}</title>
<style>
body{{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:2em;color:#1a202c}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}}
th{{background:#f7fafc}}figure{{display:inline-block;margin:4px}}figure img{{max-height:240px;border:1px solid #cbd5e0}}
.small{{color:#4a5568;font-size:12px}}.verdict{{font-size:20px;font-weight:bold;color:{_COLOURS['pass' if report['passed'] else 'fail']}}}
</style></head><body>
<h1>交付质检 Delivery QC · 第{report['episode']}集</h1>
<p class="verdict">{verdict}</p>
<p class="small">{esc(report['file'])} · platform {esc(report['platform'])} · measured {esc(report.get('created', ''))}
 in {report.get('seconds', 0):.1f}s</p>
<table><tr><th>check</th><th>status</th><th>value</th><th>limit</th><th>where</th><th>detail</th></tr>
{''.join(rows)}</table>
{f'<h2>自动修复 Fixes</h2><ul>{fixes}</ul>' if fixes else ''}
<h2>响度 Loudness</h2>{curve}
{zone_svg}
{f'<h2>问题画面 Flagged moments</h2>{thumbs}' if thumbs else ''}
{f'<h2>说明 Notes</h2><ul>{notes}</ul>' if notes else ''}
</body></html>
"""
