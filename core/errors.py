"""One error hierarchy. Every message names the bad value and says how to fix it."""

from __future__ import annotations


class ReelForgeError(Exception):
    """Base of every error ReelForge raises on purpose.

    ``hint`` says what the user can do about it; the CLI prints it after the message.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def to_dict(self) -> dict[str, str]:
        """Plain data, so an error can be shown to a person or fed back to an LLM."""
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint or ""}


class ConfigError(ReelForgeError):
    """A setting in the config file or environment is missing or malformed."""


class DeviceError(ReelForgeError):
    """A compute device was asked for by name and is not available."""


class InputError(ReelForgeError):
    """User input (a novel, an argument, a JSON document) is unusable."""


class FieldError(InputError):
    """A value given for a named field is unusable; the message names the field and the value.

    ``FieldError("steps", 0, "must be at least 1", hint="e.g. 30")`` reads
    ``steps 0: must be at least 1 (e.g. 30)``.
    """

    def __init__(self, field: str, value: object, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field} {value!r}: {problem}", hint=hint)
        self.field = field
        self.value = value
        self.problem = problem


class TextDecodeError(InputError):
    """A text file is in an encoding we cannot read."""


class MediaError(ReelForgeError):
    """A media file cannot be read or written."""


class CorruptMediaError(MediaError):
    """A media file is truncated, empty or damaged."""


class UnsupportedMediaError(MediaError):
    """A media file is valid but uses a format or codec we do not handle."""


class WorkspaceError(ReelForgeError):
    """A project folder or its manifest is missing or inconsistent."""


class Cancelled(ReelForgeError):
    """The run was stopped by the user (Ctrl-C or the UI's stop button); the workspace is resumable."""
class StorageError(ReelForgeError):
    """A file or folder cannot be read or written: permissions, a read-only disk, a full disk.

    ``path`` names it; the message says what was being done and why it failed (one line).
    """

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class DiskFullError(StorageError):
    """The disk (or quota) holding ``path`` is full."""


class StageError(ReelForgeError):
    """A stage of the chain failed; ``stage`` names it."""

    def __init__(self, stage: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"stage {stage!r} failed: {message}", hint=hint)
        self.stage = stage


class ModelError(ReelForgeError):
    """Model weights are missing, corrupt or do not match the architecture."""


class MissingDependencyError(ReelForgeError, ImportError):
    """An optional dependency is not installed; the hint names the extra to install.

    ``hint`` replaces the pip command when the dependency is not a pip extra (a Debian program,
    a package installed with ``--no-deps``).
    """

    def __init__(self, package: str, extra: str, *, hint: str | None = None) -> None:
        ReelForgeError.__init__(
            self,
            f"optional dependency {package!r} is not installed",
            hint=hint or f"pip install 'reelforge[{extra}]'",
        )
