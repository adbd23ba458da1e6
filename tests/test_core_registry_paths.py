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


def probe_for_test(name: str, config: object) -> str:
    return f"{name} needs a setting (config {config})"


def test_registry_install_step_and_probe() -> None:
    reg: Registry[object] = Registry("test-kind-d")
    reg.add("prog", "fractions:Fraction", install="apt-get install some-program",
            probe=lambda name, config: f"{name}: program not on PATH")
    reg.add("fine", "fractions:Fraction", probe=lambda name, config: "")
    reg.add("boom", "fractions:Fraction", probe=lambda name, config: 1 / 0)  # type: ignore[arg-type, return-value]
    reg.add("lazy", "fractions:Fraction", probe="tests.test_core_registry_paths:probe_for_test")
    reg.add("gone", "no_such_module_rf:X", requires=("no_such_module_rf",), install="pip install --no-deps rf-x==1")
    by_name = {s.name: s for s in reg.status()}
    assert not by_name["prog"].available and by_name["prog"].reason == "prog: program not on PATH"
    assert by_name["prog"].install == "apt-get install some-program"
    assert by_name["fine"].available and by_name["fine"].install == ""
    assert not by_name["boom"].available and by_name["boom"].reason.startswith("check failed: division by zero")
    assert not by_name["lazy"].available and by_name["lazy"].reason == "lazy needs a setting (config None)"
    assert by_name["gone"].install == "pip install --no-deps rf-x==1"
    # create() does not run probes: a component raises its own error when it cannot run
    assert reg.create("prog", 3) == 3
    with pytest.raises(MissingDependencyError) as e:
        reg.create("gone")
    assert e.value.hint == "pip install --no-deps rf-x==1"
    with pytest.raises(ValueError, match="module:attribute"):
        reg.add("bad", "fractions:Fraction", probe="not-a-target")


_POPULATED: list[str] = []


def populate_for_test(reg: Registry[object]) -> None:
    _POPULATED.append(reg.kind)
    reg.add("late", "fractions:Fraction", description="added on first read")


def test_registry_populate_runs_once_on_first_read() -> None:
    reg: Registry[object] = Registry("test-kind-e", populate="tests.test_core_registry_paths:populate_for_test")
    assert _POPULATED == []  # declaring imports nothing
    assert reg.names() == ["late"] and "late" in reg
    assert reg.create("late", 1, 4) == 0.25
    assert _POPULATED == ["test-kind-e"]
