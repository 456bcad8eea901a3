"""The emulator CA: certificates verify for every endpoint name with a real TLS handshake."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from rdsiam_emulator.clock import ManualClock
from rdsiam_emulator.tls import EmulatorCA, ServerCertificate, endpoint_names

HOST = "mydb.abcdefghijkl.eu-west-1.rds.amazonaws.com"


def _handshake(cert: ServerCertificate, ca: EmulatorCA, server_hostname: str) -> str:
    """Handshake over a real socket pair; returns the negotiated TLS version."""
    server_ctx = cert.server_context()
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with ca.client_context().wrap_socket(b, server_hostname=server_hostname) as tls:
            version = tls.version()
            tls.sendall(b"x")
    finally:
        thread.join(5)
        a.close()
        b.close()
    assert version is not None
    return version


def test_every_endpoint_name_verifies(tmp_path: Path) -> None:
    ca = EmulatorCA(tmp_path / "ca")
    names = endpoint_names([HOST, "mydb-alias.example"])
    assert names == (HOST, "mydb-alias.example")
    cert = ca.server_certificate(names)
    for name in names:
        assert _handshake(cert, ca, name) in ("TLSv1.2", "TLSv1.3")
    for undeclared in ("localhost", "127.0.0.1"):  # not in RDS certificates either
        with pytest.raises(ssl.SSLCertVerificationError, match="match"):
            _handshake(cert, ca, undeclared)


def test_names_longer_than_a_common_name_verify(tmp_path: Path) -> None:
    """RDS identifiers have up to 63 characters: the whole host name can exceed X.509's 64-character
    CN limit. The SANs carry it; the CN takes a name that fits."""
    ca = EmulatorCA(tmp_path / "ca")
    long_host = ("orders-cluster-instance-1-with-a-long-name.c0123456789a.us-east-1"
                 ".rds.amazonaws.com")
    assert len(long_host) > 64
    cert = ca.server_certificate(endpoint_names([long_host, HOST]))
    for name in (long_host, HOST):
        assert _handshake(cert, ca, name) in ("TLSv1.2", "TLSv1.3")


def test_unlisted_name_fails_verification(tmp_path: Path) -> None:
    ca = EmulatorCA(tmp_path / "ca")
    cert = ca.server_certificate(endpoint_names([HOST]))
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        _handshake(cert, ca, "other.example.com")


def test_other_ca_does_not_trust_our_certificate(tmp_path: Path) -> None:
    ca = EmulatorCA(tmp_path / "one")
    other = EmulatorCA(tmp_path / "two")
    cert = ca.server_certificate(["localhost"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, other, "localhost")


def test_certificate_contents(tmp_path: Path) -> None:
    ca = EmulatorCA(tmp_path / "ca")
    cert = ca.server_certificate(endpoint_names([HOST]))
    parsed = x509.load_pem_x509_certificate(cert.cert_path.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST]
    assert san.get_values_for_type(x509.IPAddress) == []
    # an IP is a SAN only when declared (loopback naming declares localhost and 127.0.0.1)
    loop = ca.server_certificate(endpoint_names(["localhost", "127.0.0.1"]))
    san = x509.load_pem_x509_certificate(loop.cert_path.read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert (cert.key_path.stat().st_mode & 0o777) == 0o600
    assert (ca.directory / "ca.key").stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE" not in ca.bundle_path.read_bytes()


def test_ca_and_certificates_are_reused(tmp_path: Path) -> None:
    first = EmulatorCA(tmp_path / "ca")
    cert1 = first.server_certificate(["localhost", "127.0.0.1"])
    pem_before = first.bundle_path.read_bytes()
    leaf_before = cert1.cert_path.read_bytes()
    second = EmulatorCA(tmp_path / "ca")
    cert2 = second.server_certificate(["localhost", "127.0.0.1"])
    assert second.bundle_path.read_bytes() == pem_before
    assert cert2.cert_path.read_bytes() == leaf_before


def test_ca_is_renewed_when_expiring(tmp_path: Path) -> None:
    clock = ManualClock()
    first = EmulatorCA(tmp_path / "ca", clock=clock)
    before = first.bundle_path.read_bytes()
    clock.advance(timedelta(days=3650).total_seconds())
    second = EmulatorCA(tmp_path / "ca", clock=clock)
    assert second.bundle_path.read_bytes() != before


def test_concurrent_creation_yields_one_ca(tmp_path: Path) -> None:
    results: list[bytes] = []

    def make() -> None:
        results.append(EmulatorCA(tmp_path / "ca").bundle_path.read_bytes())

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1


def _client_session_after_data(server_ctx: ssl.SSLContext, ca: EmulatorCA) -> ssl.SSLSession:
    """A TLS 1.3 handshake in memory, then one application record server → client (tickets
    arrive after the handshake); returns the client's session."""
    client_ctx = ca.client_context()
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    server.write(b"hello")
    c_in.write(s_out.read())
    assert client.read(5) == b"hello"
    assert client.version() == "TLSv1.3"
    session = client.session
    assert session is not None
    return session


def test_endpoint_contexts_send_no_session_tickets(tmp_path: Path) -> None:
    ca = EmulatorCA(tmp_path)
    cert = ca.server_certificate(["localhost"])
    assert not _client_session_after_data(cert.server_context(), ca).has_ticket
    # the check can fail: OpenSSL's default server context does send tickets
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    default.load_cert_chain(cert.cert_path, cert.key_path)
    assert _client_session_after_data(default, ca).has_ticket
