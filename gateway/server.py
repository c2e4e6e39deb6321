"""Serving the gateway: uvicorn with its TLS, and with mutual TLS the client's certificate in each request.

uvicorn verifies a client certificate against GATEWAY_TLS_CLIENT_CA_FILE but does not hand it to the app.
`ClientCertificateProtocol` is uvicorn's own HTTP/1.1 protocol with one addition: the verified subject goes
into the request's scope as the ASGI TLS extension names it (`extensions.tls.client_cert_name`, RFC 4514),
where gateway/routes/access.py maps it to a client of the clients file.
"""

from __future__ import annotations

import ssl
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.app import create_app
from gateway.settings import GatewaySettings

# RFC 4514's short names for the attributes of a subject, as Python's ssl module names them.
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "domainComponent": "DC",
    "streetAddress": "STREET",
    "userId": "UID",
}


def _escaped(value: str) -> str:
    escaped = "".join(f"\\{c}" if c in ',+"\\<>;=' else c for c in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    return escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped


def rfc4514_subject(certificate: dict[str, Any]) -> str:
    """The subject of `ssl.SSLSocket.getpeercert()` as an RFC 4514 string: most specific RDN first."""
    rdns = certificate.get("subject", ())
    parts = ["+".join(f"{_SHORT_NAMES.get(name, name)}={_escaped(value)}" for name, value in rdn) for rdn in rdns]
    return ",".join(reversed(parts))


class ClientCertificateProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        ssl_object = self.transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        if certificate:  # verified by the TLS handshake against the client CA; empty when none was sent
            self.scope["extensions"] = {"tls": {"client_cert_name": rfc4514_subject(certificate)}}


def serve(settings: GatewaySettings) -> None:
    options: dict[str, Any] = settings.uvicorn_options()
    if settings.tls_client_ca_file is not None:
        required = settings.tls_client_cert_required
        options |= {
            "ssl_ca_certs": str(settings.tls_client_ca_file),
            "ssl_cert_reqs": ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL,
            "http": ClientCertificateProtocol,
        }
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, loop="uvloop", **options)
