"""Run benchmarks: ``python -m benchmarks`` lists them, ``python -m benchmarks NAME [args]`` runs one.

Each benchmark is a module ``benchmarks/<name>.py`` with a ``main(argv) -> int``; it prints a
table naming the machine, its inputs and the baseline it measured in the same run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_") and m.name != "common")


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in {"-h", "--help", "list"}:
        print("benchmarks:", ", ".join(names) or "(none)")
        print("run one: python -m benchmarks NAME [args]")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{name}")
    import inspect

    if inspect.signature(module.main).parameters:
        return int(module.main(rest) or 0)
    sys.argv = [f"benchmarks.{name}", *rest]  # a main() that reads sys.argv itself
    return int(module.main() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
