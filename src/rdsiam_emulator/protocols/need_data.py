"""``NEED_DATA``: what every handshake machine's ``next_event`` returns when it needs more bytes
(h11's pull style: ``receive_data(bytes)``, then ``next_event()`` until ``NEED_DATA``)."""

from __future__ import annotations


class NeedData:
    """The type of ``NEED_DATA`` (one instance)."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
"""Returned by ``next_event`` when more bytes are needed."""
