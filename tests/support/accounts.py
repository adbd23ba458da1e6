"""Accounts for tests: a cheap argon2id hasher (the real parameters take ~1-2 s a login here)."""

from __future__ import annotations

from typing import Any


def fast_hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
