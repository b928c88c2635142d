"""Errors raised by the change-detection models package."""

from __future__ import annotations


class ModelError(Exception):
    """Root of all models errors."""


class CheckpointNotFoundError(ModelError, LookupError):
    """No checkpoint exists under the given name or path."""


class CheckpointCorruptError(ModelError, ValueError):
    """The weights file does not match the sha256 recorded in its card, or the card is unreadable."""


class CheckpointMismatchError(ModelError, ValueError):
    """The checkpoint was trained for other bands or another ground sample distance than the imagery."""


class DatasetError(ModelError, OSError):
    """A labelled data folder does not follow the expected layout."""


class ConfigError(ModelError, ValueError):
    """A training configuration is invalid; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in training config:\n{listing}")


class InputShapeError(ModelError, ValueError):
    """Arrays passed to a model have inconsistent shapes or band counts."""
