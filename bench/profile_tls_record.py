"""What the endpoint's TLS costs per small record, timed alone (no profiler): the server side of
one ``pgbench -S`` transaction between two in-process ``SSLObject``s over ``MemoryBIO``s.

    uv run --frozen python -m bench.profile_tls_record [--records 20000]

Prints microseconds per record for: decrypting the client's record as ``endpoint/relay.py``
does (BIO write, a read, then the read that ends in ``SSLWantReadError``), the same without that
last read when nothing is left (``pending()`` and the BIO both empty), and encrypting a reply
(``SSLObject.write`` + BIO read).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import ssl
import tempfile
import time
from pathlib import Path

QUERY = b"Q" + b"\0" * 40  # about what pgbench -S sends per transaction
REPLY = b"D" * 120


def pair(work: Path) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO, ssl.SSLObject,
                              ssl.MemoryBIO]:
    """A handshaken (server, its incoming BIO, its outgoing BIO, client, client's outgoing)."""
    from rdsiam_emulator.tls import EmulatorCA, endpoint_names

    ca = EmulatorCA(work / "ca")
    cert = ca.server_certificate(endpoint_names(["h.example"]))
    si, so, ci, co = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = cert.server_context().wrap_bio(si, so, server_side=True)
    client = ssl.create_default_context(cafile=str(ca.bundle_path)).wrap_bio(
        ci, co, server_hostname="h.example")
    for _ in range(10):
        for obj in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        si.write(co.read())
        ci.write(so.read())
    return server, si, so, client, co


def main() -> int:
    """Time the three operations; prints µs per record."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    n = ap.parse_args().records
    work = Path(tempfile.mkdtemp(prefix="rdsiam-bench-tls-"))
    try:
        server, si, so, client, co = pair(work)
        view = memoryview(bytearray(65536))

        def records() -> list[bytes]:
            out = []
            for _ in range(n):
                client.write(QUERY)
                out.append(co.read())
            return out

        spent = {"decrypt": 0.0, "decrypt_no_last_read": 0.0, "encrypt": 0.0}
        for rec in records():
            t0 = time.perf_counter()
            si.write(rec)
            got = server.read(65536, view)
            try:  # noqa: SIM105 -- as relay.py's _decrypt does (suppress() costs more)
                server.read(65536, view[got:])
            except ssl.SSLWantReadError:
                pass
            t1 = time.perf_counter()
            server.write(REPLY)
            so.read()
            spent["decrypt"] += t1 - t0
            spent["encrypt"] += time.perf_counter() - t1
        for rec in records():
            t0 = time.perf_counter()
            si.write(rec)
            got = server.read(65536, view)
            if server.pending() or si.pending:
                try:  # noqa: SIM105
                    server.read(65536, view[got:])
                except ssl.SSLWantReadError:
                    pass
            spent["decrypt_no_last_read"] += time.perf_counter() - t0
        for what, seconds in spent.items():
            print(f"{what}: {seconds / n * 1e6:.1f} µs per record")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
