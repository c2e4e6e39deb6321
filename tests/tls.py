"""A hospital CA, a gateway certificate and a client certificate it signed, as PEM files (the `tls_files`
fixture, tests/conftest.py), and a client certificate from a CA nobody trusts."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CLIENT_SUBJECT = "CN=his.hospital.example,O=Example Hospital"  # as RFC 4514 writes the client certificate's subject


def _name(subject: str) -> x509.Name:
    return (
        x509.Name.from_rfc4514_string(subject)
        if "=" in subject
        else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    )


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and "=" not in subject:  # a server's certificate; a client's has its subject only
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _client(folder: Path, name: str, ca_name: str, ca_key) -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificate(CLIENT_SUBJECT, key, ca_name, ca_key, ca=False)
    return {
        f"{name}_cert": _pem(folder / f"{name}.crt", certificate.public_bytes(serialization.Encoding.PEM)),
        f"{name}_key": _pem(folder / f"{name}.key", _key_pem(key)),
    }


def hospital_ca_and_certificate(folder: Path) -> dict[str, str]:
    """A self-signed hospital CA, a gateway certificate it signed (localhost, 127.0.0.1) and a client's; and a
    client certificate with the same subject from another CA. Keys: ca, cert, key, client_*, stranger_*."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Hospital Test CA", ca_key, "Hospital Test CA", ca_key, ca=True)
    server = _certificate("cxr-serve gateway", server_key, "Hospital Test CA", ca_key, ca=False)
    untrusted_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "ca": _pem(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "cert": _pem(folder / "gateway.crt", server.public_bytes(serialization.Encoding.PEM)),
        "key": _pem(folder / "gateway.key", _key_pem(server_key)),
        **_client(folder, "client", "Hospital Test CA", ca_key),  # CLIENT_SUBJECT, signed by the hospital CA
        **_client(folder, "stranger", "Someone Else's CA", untrusted_key),  # the same subject, another CA
    }
