"""The PACS client's settings against the session's Orthanc (tests/bridge/conftest.py, tests/pacs_server.py)."""

from __future__ import annotations

import pytest

from tests.conftest import gateway_url
from tests.pacs_server import PASSWORD, USER, Orthanc


@pytest.fixture(scope="session")
def pacs_env(orthanc: Orthanc, stack, tmp_path_factory) -> dict[str, str]:
    """The CXR_PACS_* settings an operator would set, the password in a file as from a mounted secret."""
    secret = tmp_path_factory.mktemp("pacs-secret") / "password"
    secret.write_text(PASSWORD + "\n")
    return {
        "CXR_PACS_URL": orthanc.url,
        "CXR_PACS_USERNAME": USER,
        "CXR_PACS_PASSWORD_FILE": str(secret),
        "CXR_PACS_GATEWAY_URL": gateway_url(stack),
        "CXR_PACS_LANGUAGE": "en",
    }
