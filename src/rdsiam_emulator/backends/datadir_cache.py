"""A prepared ("golden") data directory per server build, copied for every start.

Why: initdb / mariadb-install-db take one to three seconds; copying their result takes a few tens
of milliseconds. The golden copy holds no secrets (passwords are set after every start) and is
published atomically, so parallel xdist workers may race to build it without harm.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .procs import cache_dir


def cache_key(*parts: str) -> str:
    """A 16-hex-digit SHA-256 of ``parts``: the cache key of a golden directory."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def golden_dir(kind: str, key: str, build: Callable[[Path], None], marker: str) -> Path:
    """Return the cached directory for ``kind``/``key``, building it with ``build(target)`` once.

    ``build`` fills a fresh directory (it may run tools as another account); ``marker`` is a file
    that exists only in a complete build.
    """
    final = cache_dir() / f"{kind}-{key}"
    if (final / marker).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rdsiam-{kind}-build-") as scratch:
        target = Path(scratch) / "data"
        build(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{kind}-{key}-", dir=final.parent))
        copy_tree(target, staging / "data")
        try:
            os.rename(staging / "data", final)
        except OSError:
            if not (final / marker).exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def copy_tree(src: Path, dst: Path) -> None:
    """Copy preserving modes (``cp -a`` when present: much faster than Python for many files)."""
    cp = shutil.which("cp")
    if cp:
        subprocess.run([cp, "-a", "--", str(src), str(dst)], check=True)
    else:  # pragma: no cover - every Debian has cp
        shutil.copytree(src, dst, symlinks=True)
