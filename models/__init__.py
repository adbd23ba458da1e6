"""Network definitions, the model registry, weight loading and the shipped weights.

Kept import-light on purpose: ``models.train_sr`` runs on machines that have only torch,
numpy and Pillow, so nothing here imports pydantic, PyAV or ``pipelines``.

Public entry points live in :mod:`models.registry` (``load_model``, ``ensure_official``,
``get_spec``); the architectures in :mod:`models.srvgg` and :mod:`models.rrdbnet`.
"""
