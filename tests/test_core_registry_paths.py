"""core.registry and core.paths: the plug-in convention and the one safe path join."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import InputError, MissingDependencyError
from core.paths import check_name, is_safe_name, safe_join
from core.registry import Registry, registries


def test_registry_lazy_target_and_unknown_name() -> None:
    reg: Registry[object] = Registry("test-kind-a", "things")
    reg.add("frac", "fractions:Fraction", description="a fraction")
    assert "frac" in reg and reg.names() == ["frac"]
    assert reg.create("frac", 1, 2) == 0.5
    with pytest.raises(InputError) as e:
        reg.get("nope")
    assert "frac" in (e.value.hint or "")
    with pytest.raises(ValueError):
        reg.add("frac", "fractions:Fraction")


def test_registry_missing_requirement_names_extra() -> None:
    reg: Registry[object] = Registry("test-kind-b")
    reg.add("ghost", "no_such_module_rf:Thing", extra="gpu", requires=("no_such_module_rf",))
    assert not reg.available("ghost")
    with pytest.raises(MissingDependencyError) as e:
        reg.create("ghost")
    assert "reelforge[gpu]" in (e.value.hint or "")
    (st,) = reg.status()
    assert not st.available and st.install == "pip install 'reelforge[gpu]'"
    assert registries()["test-kind-b"] is reg


def test_registry_decorator() -> None:
    reg: Registry[int] = Registry("test-kind-c")

    @reg.register("two", description="2")
    def two() -> int:
        return 2

    assert reg.create("two") == 2
    assert reg.status()[0].available


@pytest.mark.parametrize("name", ["s01", "ep01_s02", "林晚", "shot-3.b"])
def test_safe_names(name: str) -> None:
    assert check_name(name, "shot id") == name


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", "a\\b", "/etc", ".hidden", "C:x", "con",
                                  "a" * 65, "x\x00", "trailing.", "a..b"])
def test_unsafe_names(name: str) -> None:
    assert not is_safe_name(name)
    with pytest.raises(InputError):
        check_name(name, "shot id")


def test_safe_join(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "synth/ep01", "s01.mp4") == tmp_path / "synth" / "ep01" / "s01.mp4"
    for bad in ("../x", "/etc/passwd", "a/../../x", "C:\\x", "..\\x"):
        with pytest.raises(InputError):
            safe_join(tmp_path, bad)
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    os.symlink(outside, tmp_path / "link")
    with pytest.raises(InputError):
        safe_join(tmp_path, "link", "f.txt")
