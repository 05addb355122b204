"""Content keys: the one way tslrec names or validates a cache by what it was computed from.

A stage directory, a prepared dataset, a resumable state and a frozen item table are all
reused only when their key is unchanged, so every one of them is hashed here, the same way.
Kept free of everything else in tslrec (and of torch and numpy), so any layer can import it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

_BYTES = (bytes, bytearray, memoryview)


def content_key(*parts: object, length: int = 20) -> str:
    """The first `length` hex digits of a SHA-256 over `parts`, deterministic across runs.

    A part is raw bytes (an array's `.tobytes()`) or anything JSON can write (settings; keys
    sorted, other objects by `str`). Each part is framed by its kind and length, so that
    ("ab", "c") and ("a", "bc") never share a key.
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, _BYTES):
            kind, data = b"b", bytes(part)
        else:
            kind, data = b"j", json.dumps(part, default=str, sort_keys=True).encode()
        digest.update(kind + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:length]


def file_key(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks: an input file of any size, as one part
    of a `content_key` (a separate helper because the bytes are streamed, not held)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
