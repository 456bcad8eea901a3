import asyncio
import socket

import pytest

from rdsiam_emulator import resolver

NAME = "mydb.cabcdefghijk.us-east-1.rds.amazonaws.com"


def _addr(name, port=5432):
    return socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][4][0]


def test_registered_name_resolves_case_insensitively_then_unregisters():
    original = socket.getaddrinfo
    resolver.register(NAME)
    try:
        assert _addr(NAME) == "127.0.0.1"
        assert _addr(NAME.upper() + ".") == "127.0.0.1"
        assert resolver.resolves(NAME) == "127.0.0.1"
        assert _addr("localhost") in ("127.0.0.1", "::1")
    finally:
        resolver.unregister(NAME)
    assert socket.getaddrinfo is original
    with pytest.raises(socket.gaierror):
        _addr(NAME)


def test_reference_counting_and_conflicts():
    resolver.register(NAME)
    resolver.register(NAME)
    try:
        with pytest.raises(ValueError, match="already resolves"):
            resolver.register(NAME, "127.0.0.2")
        resolver.unregister(NAME)
        assert resolver.resolves(NAME) == "127.0.0.1"
    finally:
        resolver.unregister(NAME)
    assert resolver.resolves(NAME) is None


def test_asyncio_resolution_goes_through_the_hook():
    resolver.register(NAME)
    try:
        async def lookup():
            infos = await asyncio.get_running_loop().getaddrinfo(NAME, 5432)
            return infos[0][4][0]

        assert asyncio.run(lookup()) == "127.0.0.1"
    finally:
        resolver.unregister(NAME)
