import json

import numpy as np
import pytest

from scripts.modelbuild.samples import load_labels
from services.contract.paths import REPO_ROOT

MODEL_DIR = REPO_ROOT / "models" / "pneumonia-classifier"


@pytest.fixture(scope="session")
def classifier_url(stack) -> str:
    return stack.url("classifier")


@pytest.fixture(scope="session")
def keras_reference() -> dict[str, np.ndarray]:
    """Softmax of the Keras model's own outputs, saved by the export's parity run."""
    outputs = json.loads((MODEL_DIR / "reference_outputs.json").read_text())["framework_outputs"]
    result = {}
    for name, logits in outputs.items():
        exp = np.exp(np.asarray(logits) - max(logits))
        result[name] = exp / exp.sum()
    return result


@pytest.fixture(scope="session")
def labels():
    return load_labels(REPO_ROOT / "models" / "samples")


@pytest.fixture(scope="session")
def resnet_export(tmp_path_factory):
    """A random-weight ResNet-18 checkpoint in the seeds' format, exported by the real tool."""
    import torch
    import torchvision

    from scripts import export_torch_resnet

    folder = tmp_path_factory.mktemp("resnet")
    checkpoint = folder / "hospital-resnet18.pth"
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=2)
    torch.save({"model_state_dict": model.state_dict(), "epoch": 7}, checkpoint)
    return export_torch_resnet.export(checkpoint, "resnet18", folder / "export", REPO_ROOT / "models" / "samples")


@pytest.fixture(scope="session")
def start_worker(tmp_path_factory):
    """Factory: a worker process on a given model with CLASSIFIER_* overrides; all stopped at the end."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import free_port

    processes = []

    def start(model_path, **overrides) -> str:
        port = free_port()
        env = {
            **os.environ,
            "CLASSIFIER_MODEL_PATH": str(model_path),
            "CLASSIFIER_PORT": str(port),
            **{f"CLASSIFIER_{k.upper()}": str(v) for k, v in overrides.items()},
        }
        log = (tmp_path_factory.mktemp("worker") / "worker.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.classifier"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "worker exited during start-up"
            time.sleep(0.25)
        raise TimeoutError("worker did not become ready")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)
