"""The worker's thread and spin-wait settings reach the ONNX Runtime session it runs."""

import pytest
from starlette.testclient import TestClient

from services.classifier.app import create_app
from services.classifier.settings import ClassifierSettings
from tests.classifier.conftest import MODEL_DIR

SPINNING = "session.intra_op.allow_spinning"


@pytest.mark.parametrize(("threads", "spin"), [(1, False), (2, True)])
def test_settings_are_read_back_from_the_session(threads, spin):
    settings = ClassifierSettings(
        model_path=MODEL_DIR / "model.onnx", intra_op_threads=threads, spin_wait=spin, model_name="served-name"
    )
    with TestClient(create_app(settings)) as client:
        options = client.app.state.service.model.session.get_session_options()
        assert options.intra_op_num_threads == threads
        assert options.get_session_config_entry(SPINNING) == ("1" if spin else "0")
        assert client.get("/v2/models/served-name/ready").json() == {"name": "served-name", "ready": True}
        assert client.get("/v2/models/pneumonia-classifier/ready").status_code == 404


def test_the_cpu_profile_turns_spinning_off_through_the_environment(monkeypatch):
    from scripts.launcher import config
    from scripts.launcher.commands import classifier_env

    for key, value in classifier_env(config.load("cpu", env={}).roles["classifier"]).items():
        monkeypatch.setenv(key, value)
    settings = ClassifierSettings()
    assert (settings.spin_wait, settings.intra_op_threads, settings.model_name) == (False, 1, "pneumonia-classifier")
