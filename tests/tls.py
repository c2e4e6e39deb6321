"""A hospital CA and a gateway certificate it signed, as PEM files (the `tls_files` fixture, tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def hospital_ca_and_certificate(folder: Path) -> dict[str, str]:
    """A self-signed hospital CA and a gateway certificate it signed (localhost, 127.0.0.1), as PEM files."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Hospital Test CA", ca_key, "Hospital Test CA", ca_key, ca=True)
    server = _certificate("cxr-serve gateway", server_key, "Hospital Test CA", ca_key, ca=False)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ca": _pem(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "cert": _pem(folder / "gateway.crt", server.public_bytes(serialization.Encoding.PEM)),
        "key": _pem(folder / "gateway.key", key_pem),
    }
