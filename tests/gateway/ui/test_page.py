"""/ui in a real headless Chromium against the real stack: the page shows what the API answers.

Every test also checks (in the `ui` fixture) that the browser asked for nothing
outside the gateway's origin, and leaves a screenshot under test-output/ui/.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from gateway.clinical.content import load as load_clinical
from gateway.ui import UI_DIR
from tests.conftest import SAMPLES, data_uri, free_port
from tests.dicom_files import dicom_uri, from_jpeg

PNEUMONIA = SAMPLES / "person1946_bacteria_4874.jpeg"
LABELS = yaml.safe_load((UI_DIR / "texts.yaml").read_text(encoding="utf-8"))
RULES = load_clinical().rules
TABLET = (820, 1180)

# Counts changes to the report while it is written, and whether stage one was on screen before the first one.
WATCH_REPORT = """
window.reportUpdates = 0;
window.findingsBeforeReport = null;
new MutationObserver(() => {
  if (window.findingsBeforeReport === null)
    window.findingsBeforeReport = !document.getElementById("result").hidden
      && document.getElementById("predicted-class").textContent !== "";
  window.reportUpdates += 1;
}).observe(document.getElementById("report"), {childList: true, characterData: true, subtree: true});
"""


def label(key: str, language: str = "en") -> str:
    return LABELS[key][language]


def chat_body(image_url: str, language: str = "en") -> dict:
    content = [{"type": "image_url", "image_url": {"url": image_url}}]
    return {"model": "cxr-report", "language": language, "messages": [{"role": "user", "content": content}]}


def api_answer(base_url: str, image: Path, language: str) -> dict:
    body = chat_body(data_uri(image.read_bytes()), language)
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()["cxr"]


def test_the_page_streams_the_answer_and_shows_what_the_api_answers(ui, gateway_base_url):
    ui.open()
    ui.choose_language("en")
    assert ui.text("disclaimer") == RULES.disclaimer.en and ui.visible("disclaimer")
    assert ui.text("stand-in") == RULES.stand_in_notice.en and ui.visible("stand-in")  # stand-in models run here
    ui.driver.execute_script(WATCH_REPORT)

    assert ui.analyze(PNEUMONIA) == "done", ui.text("error")

    api = api_answer(gateway_base_url, PNEUMONIA, "en")
    assert ui.text("predicted-class") == api["classification"]["predicted_class"]
    assert ui.text("confidence") == f"{api['classification']['confidence'] * 100:.1f}%"
    assert ui.text("risk") == api["risk_level"]["text"]
    assert ui.element("risk").get_attribute("data-code") == api["risk_level"]["code"]
    assert ui.text("interpretation") == api["confidence_interpretation"]["text"]
    meters = ui.driver.find_elements(By.CSS_SELECTOR, "#probabilities [role=meter]")
    shown = {m.get_attribute("aria-label"): float(m.get_attribute("aria-valuenow")) for m in meters}
    assert shown == {name: round(p * 100, 1) for name, p in api["classification"]["probabilities"].items()}
    assert [li.text for li in ui.driver.find_elements(By.CSS_SELECTOR, "#recommendations li")] == api["recommendations"]
    assert ui.text("fracture-text") == api["fracture"]["text"]
    marked = [m.text for m in ui.driver.find_elements(By.CSS_SELECTOR, "#fracture-text mark")]
    assert marked == api["fracture"]["evidence"]  # the clauses that set the flag, highlighted
    flag = "fracture_suspected" if api["fracture"]["suspected"] else "fracture_not_detected"
    assert ui.text("fracture-flag") == label(flag)

    assert ui.text("report").strip()
    assert "Chest X-ray preliminary report (AI-generated)" in ui.text("report")  # rendered from the validated JSON
    assert ui.driver.execute_script("return window.reportUpdates") >= 1  # sent once validated, never as raw JSON
    assert ui.driver.execute_script("return window.findingsBeforeReport") is True  # stage one shown first
    assert ui.element("result").get_attribute("data-status") == "complete" and not ui.visible("partial")
    timings = [cell.text for cell in ui.driver.find_elements(By.CSS_SELECTOR, "#timings tr td:first-child")]
    assert timings == [label("stage_classifier"), label("stage_fracture"), label("stage_report"), label("stage_total")]
    assert len(ui.driver.find_elements(By.CSS_SELECTOR, "#models li")) == 3
    assert all(label("model_stand_in") in li.text for li in ui.driver.find_elements(By.CSS_SELECTOR, "#models li"))
    # Nothing of the patient's image or result is kept by the browser.
    kept = ui.driver.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]")
    assert kept == [0, 0, ""]
    ui.driver.execute_script("window.scrollTo(0, 0)")
    ui.screenshot("report-en")


def test_a_dicom_is_shown_as_the_model_sees_it_and_analysed(ui, gateway_base_url, tmp_path):
    dicom = from_jpeg(PNEUMONIA.read_bytes(), "mono1")  # inverted polarity: shown right only if rendered
    path = tmp_path / "xray.dcm"
    path.write_bytes(dicom)
    ui.open()
    ui.choose_language("en")
    ui.element("file").send_keys(str(path))
    WebDriverWait(ui.driver, 30).until(lambda _: ui.visible("preview"))
    shown = ui.driver.execute_script(
        "const img = document.getElementById('preview'); const c = document.createElement('canvas');"
        "c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
        "return [c.width, c.height, Array.from(g.getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 == 0))]"
    )
    grey = np.asarray(Image.open(PNEUMONIA).convert("L"))
    assert shown[:2] == [grey.shape[1], grey.shape[0]]
    assert np.array_equal(np.asarray(shown[2], dtype=np.uint8).reshape(grey.shape), grey)  # bone bright, as the JPEG
    ui.element("submit").click()
    assert ui.wait_for_state("done", "failed", timeout=300) == "done", ui.text("error")
    api = httpx.post(f"{gateway_base_url}/v1/chat/completions", json=chat_body(dicom_uri(dicom)), timeout=300).json()["cxr"]
    assert ui.text("predicted-class") == api["classification"]["predicted_class"]
    assert ui.text("risk") == api["risk_level"]["text"]


def test_the_page_takes_its_words_from_the_data_files_in_both_languages(ui):
    ui.open()
    for language in ("zh", "en"):
        ui.choose_language(language)
        assert ui.text("submit") == label("submit", language)
        assert ui.driver.find_element(By.CSS_SELECTOR, "label[for=file]").text == label("file_label", language)
        assert ui.text("disclaimer") == RULES.disclaimer.get(language)
        assert ui.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == ("zh-CN" if language == "zh" else "en")
        ui.screenshot(f"labels-{language}")


def test_a_file_that_is_not_an_x_ray_is_refused_in_plain_words(ui, gateway_base_url, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    ui.open()
    ui.choose_language("en")
    assert ui.analyze(notes, timeout=30) == "failed"
    body = chat_body(data_uri(notes.read_bytes(), "text/plain"))  # what the browser sends for a .txt file
    refused = httpx.post(f"{gateway_base_url}/v1/chat/completions", json=body, timeout=30)
    assert refused.status_code == 400
    assert ui.text("error") == f"{label('error_refused')} {refused.json()['error']['message']}"
    assert not ui.visible("result") and not ui.visible("preview")


def test_a_failed_report_stage_shows_a_partial_answer_naming_the_stage(ui, start_gateway):
    gateway = start_gateway(GATEWAY_REPORT_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    ui.open(gateway.url)
    ui.choose_language("en")
    assert ui.analyze(PNEUMONIA) == "failed"
    assert ui.visible("partial") and label("status_partial") in ui.text("partial")
    assert f"{label('stage_report')}: report backend" in ui.text("partial")
    assert ui.element("result").get_attribute("data-status") == "partial"
    assert ui.text("predicted-class") and ui.text("risk")  # what is known is still shown
    assert ui.text("report") == RULES.report_unavailable.en  # never an invented report
    assert ui.text("error").startswith(label("error_stream"))


def test_a_backend_that_is_down_is_said_in_plain_words(ui, start_gateway):
    gateway = start_gateway(GATEWAY_CLASSIFIER_URL=f"http://127.0.0.1:{free_port()}")
    ui.open(gateway.url)
    ui.choose_language("en")
    assert ui.analyze(PNEUMONIA, timeout=60) == "failed"
    assert ui.text("error").startswith(f"{label('error_backend')} classifier backend")
    assert not ui.visible("result")


KEY = "ui-test-key-0123456789"


def test_an_api_key_is_asked_for_and_sent_when_keys_are_configured(ui, start_gateway):
    gateway = start_gateway(GATEWAY_API_KEYS=KEY)
    ui.open(gateway.url)
    ui.choose_language("en")
    assert ui.visible("api-key")
    assert ui.element("api-key").get_attribute("type") == "password"
    assert ui.analyze(PNEUMONIA, timeout=30) == "failed"
    assert ui.text("error").startswith(label("error_auth"))
    ui.element("api-key").send_keys(KEY)
    ui.element("submit").click()
    assert ui.wait_for_state("done", "failed", timeout=300) == "done", ui.text("error")
    assert ui.text("predicted-class")


@pytest.mark.parametrize("size", [(1280, 800), TABLET], ids=["laptop", "tablet"])
def test_the_page_fits_the_screen_and_works_from_the_keyboard(ui, size):
    ui.open()
    ui.driver.set_window_size(*size)
    ui.choose_language("en")
    fits = ui.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, f"the page scrolls sideways at {size}"
    unlabelled = ui.driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => !e.closest('[hidden]') && e.labels.length === 0).map(e => e.id)"
    )
    assert unlabelled == []
    ui.driver.find_element(By.TAG_NAME, "body").click()
    keyboard = ActionChains(ui.driver)  # key presses to whatever has the focus, as a person types them
    order = []
    for _ in range(4):
        keyboard.send_keys(Keys.TAB).perform()
        order.append(ui.driver.switch_to.active_element.get_attribute("id"))
    assert order == ["file", "indication", "language", "submit"]
    keyboard.send_keys(Keys.ENTER).perform()  # submit with the keyboard, no file chosen
    ui.wait_for_state("failed", timeout=10)
    assert ui.text("error") == label("error_no_file")
