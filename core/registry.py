"""One plug-in convention: ``Registry[T]`` maps a name to a factory, with what it needs.

Every kind of component (shot detectors, script engines, TTS engines, picture engines,
generation providers, timeline exporters, interpolators, encoders, super-resolution models)
declares one registry in its package's ``__init__``::

    DETECTORS: Registry[Detector] = Registry("detector", "shot-boundary detectors")
    DETECTORS.add("fast", "pipelines.detect.fast:FastDetector", description="...")
    DETECTORS.add("transnet", "pipelines.detect.transnet:TransNetDetector", description="...",
                  extra="scale", requires=("torch",), probe="pipelines.detect.transnet:weights_probe")
    detector = DETECTORS.create("transnet", device="cpu")

The registries today (kind: where): ``detector``: ``pipelines.detect.DETECTORS``; ``tts``,
``interpolator``, ``encoder``: ``pipelines.TTS_ENGINES``, ``INTERPOLATORS``, ``ENCODERS``;
``script-engine``: ``agents.script.ENGINES``; ``sr-model``: ``models.SR_MODELS``; ``exporter``:
``pipelines.timeline.EXPORTERS``.

A factory may be given as ``"module:attribute"`` so that registering a neural component does
not import its runtime; the module is imported on first use. ``requires`` names the modules the
component imports; a missing one raises :class:`~core.errors.MissingDependencyError` naming the
extra to install, before the factory runs. What pip cannot install (a Debian program, weights that
are converted on first use, a setting) is said by ``install`` (the command or step that gets it)
and checked by ``probe``: a function ``probe(name, config) -> str`` that returns "" when the
component can run here and otherwise why not (a ``"module:function"`` string imports it on first
use). ``reelforge doctor`` lists every registry with :meth:`Registry.status`, which runs the
probes; :meth:`Registry.create` does not (a component raises its own error when it cannot run).

A registry whose entries are data kept elsewhere (the super-resolution models' sha256 manifest)
names a ``populate`` function, ``"module:function"`` called with the registry the first time it is
read, so declaring the registry stays as light as importing ``core.registry``.

Third-party plug-ins register through the Python entry-point group ``reelforge.plugins``: an
entry point named ``<kind>.<name>`` (``detector.mydet = "mypkg.det:MyDetector"``) is added to
the registry of that kind the first time the registry is read. Entry points are loaded lazily,
so a broken plug-in cannot stop ReelForge from starting; it is reported by ``doctor``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from core.errors import InputError, MissingDependencyError, ReelForgeError

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)

T = TypeVar("T")
# probe(name, config) -> "" when the component can run here, else the reason it cannot
Probe = Callable[[str, "Config | None"], str]

PLUGIN_GROUP = "reelforge.plugins"

_ALL: dict[str, Registry[Any]] = {}


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One registered component."""

    name: str
    target: Callable[..., T] | str  # a callable, or "module:attribute" imported on first use
    description: str = ""
    extra: str | None = None  # the reelforge extra that installs what it needs
    requires: tuple[str, ...] = ()  # importable module names it needs
    plugin: str | None = None  # the distribution that registered it (entry points only)
    install: str = ""  # how to get what it needs when that is not a pip extra (apt, a setting...)
    probe: Probe | str | None = None  # a finer check than ``requires`` (programs, weights, config)

    def missing(self) -> list[str]:
        """The modules in ``requires`` that cannot be imported here."""
        out = []
        for mod in self.requires:
            try:
                if importlib.util.find_spec(mod) is None:
                    out.append(mod)
            except (ImportError, ValueError):
                out.append(mod)
        return out

    def install_hint(self) -> str:
        if self.install:
            return self.install
        if self.extra:
            return f"pip install 'reelforge[{self.extra}]'"
        if self.requires:
            return "pip install " + " ".join(self.requires)
        return ""

    def load(self) -> Callable[..., T]:
        """The factory itself, importing its module when it was given by name."""
        missing = self.missing()
        if missing:
            raise MissingDependencyError(missing[0], self.extra or "all", hint=self.install or None)
        if not isinstance(self.target, str):
            return self.target
        obj = _import_target(self.name, self.target, self.extra, self.install)
        if not callable(obj):
            raise ReelForgeError(f"{self.name!r} points at {self.target!r}, which is not callable")
        return cast("Callable[..., T]", obj)  # T is the registry's promise

    def why_not(self, config: Config | None = None) -> str:
        """Why the component cannot run here (missing modules first, then the probe); empty if it can."""
        missing = self.missing()
        if missing:
            return f"missing {', '.join(missing)}"
        if self.probe is None:
            return ""
        try:
            probe = self.probe
            if isinstance(probe, str):
                probe = cast("Probe", _import_target(self.name, probe, self.extra, self.install))
            return probe(self.name, config)
        except Exception as e:  # a probe reports, it never stops doctor
            return f"check failed: {e}"


def _import_target(name: str, target: str, extra: str | None, install: str) -> Any:
    """``"module:attr.attr"`` imported; a missing module names the extra (or install step) to get it."""
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except ImportError as e:
        if extra or install:
            raise MissingDependencyError(e.name or module, extra or "all", hint=install or None) from e
        raise
    except AttributeError as e:
        raise ReelForgeError(f"{name!r} points at {target!r}, which does not exist",
                             hint="reinstall the package that provides it") from e
    return obj


@dataclass(frozen=True, slots=True)
class Status:
    """One line of ``doctor``: is the component usable here, and if not, how to get it."""

    kind: str
    name: str
    description: str
    available: bool
    reason: str = ""
    install: str = ""


@dataclass(slots=True)
class Registry(Generic[T]):
    """Name -> factory of one kind of component. Loud on unknown names."""

    kind: str  # "detector", "tts", ... (the entry-point prefix)
    title: str = ""  # shown by doctor
    populate: str | None = None  # "module:function" adding the built-in entries on first read
    _entries: dict[str, Entry[T]] = field(default_factory=dict)
    _populated: bool = False
    _plugins_loaded: bool = False
    _plugin_errors: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind in _ALL:
            raise ValueError(f"a registry of kind {self.kind!r} already exists")
        _ALL[self.kind] = self

    # -- declaring ---------------------------------------------------------------------------

    def add(self, name: str, target: Callable[..., T] | str, *, description: str = "",
            extra: str | None = None, requires: tuple[str, ...] = (), replace: bool = False,
            plugin: str | None = None, install: str = "", probe: Probe | str | None = None) -> Entry[T]:
        """Register ``target`` under ``name``; a second registration of a name needs ``replace``."""
        if not name or name != name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty word, got {name!r}")
        for what, value in (("target", target), ("probe", probe)):
            if isinstance(value, str) and ":" not in value:
                raise ValueError(f"a {self.kind} {what} given by name must be 'module:attribute', got {value!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        entry: Entry[T] = Entry(name, target, description, extra, tuple(requires), plugin, install, probe)
        self._entries[name] = entry
        return entry

    def register(self, name: str, *, description: str = "", extra: str | None = None,
                 requires: tuple[str, ...] = (), install: str = "",
                 probe: Probe | str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form of :meth:`add` for a class or function defined next to its registry."""

        def deco(target: Callable[..., T]) -> Callable[..., T]:
            self.add(name, target, description=description, extra=extra, requires=requires,
                     install=install, probe=probe)
            return target

        return deco

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def rescan(self) -> None:
        """Forget the plug-ins found so far and read the entry points again on the next read
        (after ``pip install`` of a plug-in into a running studio, and in tests)."""
        for name in [n for n, e in self._entries.items() if e.plugin is not None]:
            del self._entries[name]
        self._plugin_errors.clear()
        self._plugins_loaded = False

    # -- reading -----------------------------------------------------------------------------

    def _load_plugins(self) -> None:
        if not self._populated and self.populate:
            self._populated = True  # first, so a populate that reads the registry does not recurse
            fill = _import_target(self.kind, self.populate, None, "")
            fill(self)
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        try:
            from importlib.metadata import entry_points

            eps = entry_points(group=PLUGIN_GROUP)
        except Exception as e:  # a broken installation must not stop the built-in components
            log.warning("could not read the %s entry points: %s", PLUGIN_GROUP, e)
            return
        prefix = self.kind + "."
        for ep in eps:
            if not ep.name.startswith(prefix):
                continue
            name = ep.name[len(prefix):]
            dist = getattr(getattr(ep, "dist", None), "name", None) or "a plug-in"
            if name in self._entries:
                self._plugin_errors[name] = f"{dist} registers {self.kind} {name!r}, which is built in; ignored"
                log.warning(self._plugin_errors[name])
                continue
            if ":" not in ep.value:
                self._plugin_errors[name] = f"{dist}: entry point {ep.name} = {ep.value!r} is not 'module:attribute'"
                log.warning(self._plugin_errors[name])
                continue
            self._entries[name] = Entry(name, ep.value, f"plug-in from {dist}", None, (), dist)

    def names(self) -> list[str]:
        self._load_plugins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name raises an error listing the known ones."""
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise InputError(f"unknown {self.kind} {name!r}", hint=f"use one of: {known}") from None

    def factory(self, name: str) -> Callable[..., T]:
        """The factory (class or function) for ``name``, imported if it was given by name."""
        return self.get(name).load()

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> T:
        """Build the component ``name`` with the given arguments."""
        return self.factory(name)(*args, **kwargs)

    def available(self, name: str) -> bool:
        """True when everything ``name`` needs can be imported here (does not import it)."""
        return not self.get(name).missing()

    def status(self, config: Config | None = None) -> list[Status]:
        """What is usable here, what is not and the install command for it (for doctor).

        Runs each entry's probe (with ``config``, the settings doctor reports on) and imports
        third-party plug-ins, so a broken one shows here instead of at first use.
        """
        self._load_plugins()
        out: list[Status] = []
        for entry in self._entries.values():
            reason = entry.why_not(config)
            if not reason and entry.plugin and isinstance(entry.target, str):
                try:
                    entry.load()
                except Exception as e:  # report, never crash doctor on a third-party plug-in
                    reason = f"plug-in failed to load: {e}"
            install = entry.install_hint() if reason and not reason.startswith("plug-in failed") else ""
            out.append(Status(self.kind, entry.name, entry.description, not reason, reason, install))
        for name, why in self._plugin_errors.items():
            out.append(Status(self.kind, name, "plug-in", False, why))
        return out


def registries() -> dict[str, Registry[Any]]:
    """Every registry created so far, by kind (import the packages that declare them first)."""
    return dict(_ALL)
