"""Where a result came from: the commit of the code that produced it."""

from __future__ import annotations

import subprocess

# published figures: regenerating them does not make the code that produced them different
_PUBLISHED = (":!benchmarks/results", ":!docs/results.md")


def git_commit() -> str | None:
    """The checked-out commit (suffixed `-dirty` when code changed), None outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_PUBLISHED],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head
