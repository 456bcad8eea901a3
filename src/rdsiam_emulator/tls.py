"""The emulator's certificate authority and per-endpoint server certificates.

Clients verify endpoints exactly as they verify RDS (``sslmode=verify-full`` with a root bundle):
the CA bundle file plays the role of RDS's ``global-bundle.pem``. An endpoint certificate names
the endpoint's host name and its explicitly declared aliases only, as RDS certificates do:
``verify-full`` to ``127.0.0.1`` or ``localhost`` fails unless that is the endpoint's declared
name. Keys are ECDSA P-256: generating and handshaking with them is far cheaper than RSA, which
matters for connection-rate tests.

The CA is cached in a caller-chosen directory and created at most once even when several
processes (pytest-xdist workers) ask for it at the same time.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rdsiam_emulator.clock import Clock, SystemClock

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=397)
"""Below the 398-day ceiling some clients enforce for server certificates."""
RENEW_BEFORE = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """Files of one endpoint certificate (chain = leaf only; clients trust the CA bundle)."""

    names: tuple[str, ...]
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context for this certificate (TLS 1.2+), without session tickets.

        PostgreSQL and MySQL servers switch tickets off (``SSL_OP_NO_TICKET``), so RDS clients
        never resume sessions; the two TLS 1.3 tickets OpenSSL would send by default also cost
        CPU per handshake (~17 % measured with mariadb-slap; no measurable change with pgbench).
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


class EmulatorCA:
    """A CA kept in ``directory`` (created on first use, then reused)."""

    def __init__(self, directory: Path, *, clock: Clock | None = None) -> None:
        self.directory = Path(directory)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.directory / ".lock"):
            if not self._usable(self.directory / CA_CERT_FILE, self.directory / CA_KEY_FILE):
                self._create_ca()
        self._key = _load_key(self.directory / CA_KEY_FILE)
        self._cert = x509.load_pem_x509_certificate((self.directory / CA_CERT_FILE).read_bytes())

    @property
    def bundle_path(self) -> Path:
        """The PEM file clients use as ``sslrootcert`` / ``ssl_ca`` / ``cafile``."""
        return self.directory / CA_CERT_FILE

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context trusting only this CA (for tests, benchmarks, tools)."""
        return ssl.create_default_context(cafile=str(self.bundle_path))

    def server_certificate(self, names: Iterable[str]) -> ServerCertificate:
        """The certificate for ``names`` (the first is the subject CN); issued once, then reused.

        Valid ``SERVER_VALIDITY`` (397 days) from issue, re-issued ``RENEW_BEFORE`` (7 days) before
        it expires by the CA's clock. ``ValueError`` for an empty ``names``; ``OSError`` when the
        CA directory cannot be written.
        """
        ordered = _unique(names)
        if not ordered:
            raise ValueError("a server certificate needs at least one name")
        digest = hashlib.sha256("\0".join(ordered).encode("utf-8")).hexdigest()[:16]
        cert_dir = self.directory / "servers"
        cert_dir.mkdir(exist_ok=True)
        cert_path = cert_dir / f"{digest}.pem"
        key_path = cert_dir / f"{digest}.key"
        with _locked(self.directory / ".lock"):
            if not self._usable(cert_path, key_path, issuer=self._cert):
                self._issue(ordered, cert_path, key_path)
        return ServerCertificate(ordered, cert_path, key_path)

    # ------------------------------------------------------------------------------ internals

    def _usable(self, cert_path: Path, key_path: Path,
                issuer: x509.Certificate | None = None) -> bool:
        if not (cert_path.exists() and key_path.exists()):
            return False
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            return False
        if cert.not_valid_after_utc - RENEW_BEFORE < self._clock.now():
            return False
        return issuer is None or cert.issuer == issuer.subject

    def _create_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rdsiam-emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"rdsiam-emulator CA {os.urandom(4).hex()}"),
        ])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.directory / CA_KEY_FILE, _key_pem(key))
        _write_atomic(self.directory / CA_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
        # Old server certificates were signed by another CA: drop them.
        servers = self.directory / "servers"
        if servers.is_dir():
            for old in servers.iterdir():
                old.unlink(missing_ok=True)

    def _issue(self, names: Sequence[str], cert_path: Path, key_path: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names))]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + SERVER_VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))


CN_MAX = 64
"""X.509's upper bound on a common name (RFC 5280); RDS names can be longer (63-character
identifiers), and clients verify the SANs anyway."""


def _common_name(names: Sequence[str]) -> str:
    """The first name that fits in a CN, else a fixed label (the SANs carry every name)."""
    return next((n for n in names if len(n) <= CN_MAX), "rdsiam-emulator endpoint")


def endpoint_names(hosts: Iterable[str]) -> tuple[str, ...]:
    """The SAN list for an endpoint: exactly its host name and declared aliases, in order, without
    duplicates (no implicit ``localhost``/``127.0.0.1``: RDS certificates have none)."""
    return _unique(hosts)


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        clean = name.strip().rstrip(".")
        if clean.startswith("[") and clean.endswith("]"):
            clean = clean[1:-1]
        if clean and clean.lower() not in (n.lower() for n in out):
            out.append(clean)
    return tuple(out)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_private(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
