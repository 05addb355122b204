"""One exception family, so the CLI turns any expected failure into a clear message and exit."""

from __future__ import annotations

from pathlib import Path


class TslrecError(Exception):
    """An expected failure the user can fix (bad input, bad config); never a bug."""


class DataError(TslrecError):
    """Bad input: names the file and, where known, the line or column, and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        where = []
        if self.path:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(TslrecError):
    """A config key that is unknown, mistyped or out of range."""


class TslrecWarning(UserWarning):
    """A value that is legal but almost surely a mistake: the run goes on, the user is told."""


def warn(message: str) -> None:
    """Tell the user about a surely-mistaken value; the CLI prints it as a `warning:` line."""
    import warnings

    warnings.warn(message, TslrecWarning, stacklevel=2)
