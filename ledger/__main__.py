"""``python -m ledger --db FILE ...``: the ledger CLI on its own."""

from __future__ import annotations

import sys

from ledger.cli import main

if __name__ == "__main__":
    sys.exit(main())
