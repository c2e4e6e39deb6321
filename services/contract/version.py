"""cxr-serve's version: defined once, in pyproject.toml, and read here from the installed package's metadata.

The gateway reports it (its OpenAPI document's `info.version`), the launcher tags the images built here with
it (deploy/models.yaml writes their tags as `{version}`), and CHANGELOG.md says what each version changed.
"""

from __future__ import annotations

from importlib.metadata import version

VERSION = version("cxr-serve")
