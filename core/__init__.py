"""Leaf code every other package may import: errors, device, config, media I/O, workspace.

Nothing in ``core`` imports another ReelForge package.
"""
