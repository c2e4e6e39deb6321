"""Release hygiene: the licence, the models' licences in NOTICE, one version reported everywhere, a changelog
entry for it."""

from __future__ import annotations

import json
import tomllib

import yaml

from scripts.launcher import config, manifests
from services.contract.paths import REPO_ROOT
from services.contract.version import VERSION

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_the_code_is_apache_2_licensed_and_says_so_in_its_metadata():
    assert "Apache License\n                           Version 2.0" in (REPO_ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}


def test_notice_names_every_production_models_licence():
    notice = (REPO_ROOT / "NOTICE").read_text()
    for card in sorted((REPO_ROOT / "deploy" / "model-cards").glob("*.json")):
        assert json.loads(card.read_text())["licence"] in notice, card.name


def test_one_version_in_the_package_the_images_and_the_changelog():
    assert PYPROJECT["project"]["version"] == VERSION
    own = {name: image for name, image in config.load("gpu", env={}).containers.images.items() if image.startswith("cxr-serve/")}
    assert own and all(image.endswith(f":{VERSION}") for image in own.values()), own
    assert f"## {VERSION} " in (REPO_ROOT / "CHANGELOG.md").read_text()


def test_every_image_built_here_carries_its_version_and_licence_as_oci_labels():
    for profile, file_name in manifests.GENERATED_PROFILES.items():
        compose = yaml.safe_load((REPO_ROOT / "deploy" / file_name).read_text())
        built = {name: service["build"]["labels"] for name, service in compose["services"].items() if "build" in service}
        assert {"gateway", "bridge", "classifier"} <= set(built), profile
        for name, labels in built.items():
            assert labels["org.opencontainers.image.version"] == VERSION, name
            assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]["text"], name
            assert labels["org.opencontainers.image.title"].startswith("cxr-serve "), name
