"""Server version strings in the one form the emulator reports (``10.11.19``, ``15.18``)."""

from __future__ import annotations


def short_version(version: str) -> str:
    """``10.11.19`` of ``10.11.19-MariaDB-0+deb12u1``; ``15.18`` of ``15.18 (Debian ...)``."""
    return version.split(" ", 1)[0].split("-", 1)[0]
