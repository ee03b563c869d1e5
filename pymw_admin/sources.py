"""This package's own source files and one digest of them: what decides that a bundle, a packed
worker program or the server's venv is stale. Shared by every layer; imports nothing of the
package."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def package_files(root: Path = PACKAGE_ROOT, pattern: str = "*.py") -> list[Path]:
    """The package's files matching ``pattern``, sorted, bytecode caches left out."""
    return sorted(p for p in root.rglob(pattern)
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def digest(files: Iterable[tuple[str, Path]], *extra: str, length: int = 20) -> str:
    """A hex digest of ``(name, file)`` pairs (the name and the content of each, in the order
    given) and of ``extra`` strings, cut to ``length`` characters."""
    h = hashlib.sha256()
    for name, path in files:
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for item in extra:
        h.update(item.encode() + b"\0")
    return h.hexdigest()[:length]
