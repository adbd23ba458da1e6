"""Executors for the Studio's plans: ``local`` (this process, the default; :mod:`core.executor`)
and ``ray`` (a Ray cluster; :mod:`agents.executors.ray`, the optional extra ``ray``).

:func:`executor_for` turns what a person types (``--ray auto``, ``--ray 10.0.0.5:6379``, the
config's ``[cluster] address``) into an executor.
"""

from __future__ import annotations

from typing import Any

from core.config import Config
from core.executor import Executor, LocalExecutor
from core.registry import Registry

EXECUTORS: Registry[Executor] = Registry("executor", "where the Studio's tasks run")
EXECUTORS.add("local", LocalExecutor, description="every task in this process, in plan order (the default)")
EXECUTORS.add("ray", "agents.executors.ray:RayExecutor", extra="ray", requires=("ray",),
              description="tasks across a Ray cluster: model-holding pools, retries when a node dies")


def executor_for(address: str | None, config: Config | None = None, **options: Any) -> Executor:
    """The executor for ``address``: ``None`` takes the config's ``[cluster] address``; ``""`` runs
    in this process; ``"auto"`` joins the Ray cluster this machine belongs to, else starts a local
    one (in Ray's temp folder, ``RAY_TMPDIR`` honoured); ``"local"`` always starts a new local
    Ray cluster; anything else is a Ray address (``host:port`` or ``ray://host:10001``)."""
    cluster = config.cluster if config is not None else None
    if address is None:
        address = cluster.address if cluster is not None else ""
    if not address:
        return LocalExecutor()
    if cluster is not None:
        options.setdefault("retries", cluster.retries)
    return EXECUTORS.create("ray", address=address, **options)
