"""Register a component for the length of a test, and plug-in distributions made on disk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.registry import Registry


@contextmanager
def registered(registry: Registry[Any], name: str, target: Callable[..., Any] | str, **kw: Any) -> Iterator[None]:
    """``registry.add(name, target)`` for the ``with`` block; removed afterwards even on failure."""
    registry.add(name, target, **kw)
    try:
        yield
    finally:
        registry.remove(name)


def write_plugin_distribution(site: Path, dist: str, modules: dict[str, str],
                              entry_points: dict[str, str], version: str = "1.0") -> Path:
    """An installed-looking distribution in ``site``: modules, ``<dist>-<version>.dist-info`` with
    METADATA, RECORD and ``entry_points.txt`` declaring ``entry_points`` in ``reelforge.plugins``.

    This is the layout ``pip install`` leaves in site-packages, so ``importlib.metadata`` finds
    it once ``site`` is on ``sys.path``.
    """
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    lines = ["[reelforge.plugins]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    record = [f"{m}.py,," for m in modules] + [f"{info.name}/{f},," for f in ("METADATA", "entry_points.txt", "RECORD")]
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")
    return info
