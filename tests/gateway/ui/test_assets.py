"""/ui's assets and headers, without a browser: every label the page uses exists, nothing is loaded from elsewhere."""

from __future__ import annotations

import io
import re
import shutil
from typing import get_args

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from gateway.clinical.content import ClinicalContentError
from gateway.routes.ui import CONTENT_SECURITY_POLICY
from gateway.ui import ASSET_TYPES, STATIC_DIR, UI_DIR, load
from services.contract.review import FindingName, SignedState, Verdict
from services.contract.roles import Role
from tests.conftest import SAMPLES
from tests.dicom_files import from_jpeg

INDEX = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
REVIEW = (STATIC_DIR / "review.html").read_text(encoding="utf-8")
SCRIPT = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
REVIEW_SCRIPT = (STATIC_DIR / "review.js").read_text(encoding="utf-8")
FROM_CONFIG = {"disclaimer", "stand_in_notice"}  # rules.yaml's, added by /ui/config.json


def test_every_label_the_pages_use_is_in_the_texts_file():
    labels = set(load().labels)
    pages, scripts = INDEX + REVIEW, SCRIPT + REVIEW_SCRIPT
    used = set(re.findall(r'data-text="([a-z_]+)"', pages)) | set(re.findall(r'\bt\("([a-z_]+)"', scripts))
    used |= {key for key in labels if f'"{key}"' in SCRIPT}  # chosen in code: t(ok ? "a" : "b"), tables by status
    used |= {f"stage_{role}" for role in Role} | {"stage_total"}  # t(`stage_${stage}`)
    # the review page's t(`review_finding_${...}`), by the API's own names (services/contract/review.py)
    used |= {f"review_finding_{name}" for name in get_args(FindingName)} | {f"review_verdict_{v}" for v in get_args(Verdict)}
    used |= {f"review_state_{state}" for state in get_args(SignedState)}
    assert used - FROM_CONFIG - labels == set()
    assert labels - used == set(), "texts.yaml has labels the page never shows"


def test_the_pages_load_only_their_own_assets():
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', INDEX + REVIEW))
    own = {
        "/ui/login",
        "/ui/logout",
        "/ui",
    }  # the login's links and the way back: the gateway's own routes (gateway/routes/ui.py)
    assert referenced - own == {f"/ui/static/{name}" for name in ASSET_TYPES}
    for name in ASSET_TYPES:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        addresses = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)) - {"http://www.w3.org"}  # the SVG namespace
        assert addresses == set(), f"{name} names another origin: {addresses}"


def test_a_label_missing_a_language_stops_the_start_naming_it(tmp_path):
    folder = tmp_path / "ui"
    shutil.copytree(UI_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    labels = yaml.safe_load((folder / "texts.yaml").read_text(encoding="utf-8"))
    del labels["submit"]["zh"]
    (folder / "texts.yaml").write_text(yaml.safe_dump(labels, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ClinicalContentError, match=r"texts.yaml: submit.zh: Field required"):
        load(folder)


@pytest.fixture(scope="module")
def gateway(gateway_base_url) -> httpx.Client:
    return httpx.Client(base_url=gateway_base_url, timeout=10)


def test_the_page_and_its_assets_carry_a_policy_that_allows_only_the_gateway(gateway):
    for path in ["/ui", "/ui/review", "/ui/config.json", *(f"/ui/static/{name}" for name in ASSET_TYPES)]:
        response = gateway.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["cache-control"] == "no-store" and response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert gateway.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")


def test_only_the_packaged_assets_are_served(gateway):
    for path in ("/ui/static/texts.yaml", "/ui/static/..%2F__init__.py", "/ui/static/index.html.bak"):
        response = gateway.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path


def test_the_config_gives_both_languages_and_says_stand_ins_run(gateway):
    config = gateway.get("/ui/config.json").json()
    assert config["model"] == "cxr-report" and config["auth_required"] is False and config["stand_in"] is True
    rules = yaml.safe_load((UI_DIR.parent / "clinical" / "rules.yaml").read_text(encoding="utf-8"))
    for language in ("zh", "en"):
        assert config["texts"][language]["disclaimer"] == rules["disclaimer"][language]
        assert config["texts"][language]["submit"] == load().labels["submit"].get(language)


def test_the_preview_renders_a_dicom_as_the_models_see_it_and_refuses_what_they_would(gateway):
    jpeg = (SAMPLES / "person1946_bacteria_4874.jpeg").read_bytes()
    rendered = gateway.post("/ui/preview", content=from_jpeg(jpeg, "mono2-12bit-window"))
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(rendered.content))), np.asarray(Image.open(io.BytesIO(jpeg))))
    refused = gateway.post("/ui/preview", content=from_jpeg(jpeg, "mono2-8bit", modality="CT"))
    assert refused.status_code == 400 and "modality CT" in refused.json()["error"]["message"]
