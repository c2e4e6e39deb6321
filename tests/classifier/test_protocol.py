"""Open Inference Protocol (KServe v2) conformance of the worker's REST API."""

import httpx
import numpy as np
import pytest

from services.contract import images as preprocess
from services.contract.classifier_model import ModelMetadata
from tests.classifier.conftest import MODEL_DIR

MODEL = "pneumonia-classifier"


@pytest.fixture(scope="module")
def client(classifier_url):
    with httpx.Client(base_url=classifier_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def metadata():
    return ModelMetadata.read(MODEL_DIR / "model.onnx")


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["ready"] is True
    assert client.get("/v2").json()["name"]
    assert client.get(f"/v2/models/{MODEL}/ready").json()["ready"] is True


def test_model_metadata_shape(client):
    body = client.get(f"/v2/models/{MODEL}").json()
    assert body["name"] == MODEL
    assert body["platform"] == "onnxruntime_onnx"
    assert body["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 150, 150, 3]}]
    assert body["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 2]}]
    assert body["parameters"]["provider"] == "CPUExecutionProvider"


def test_infer_with_a_preprocessed_tensor_matches_classify(client, metadata, sample_images):
    image = sample_images["NORMAL2-IM-1427-0001.jpeg"]
    tensor = preprocess.prepare(image, metadata.input, 50_000_000)[np.newaxis]
    body = client.post(
        f"/v2/models/{MODEL}/infer",
        json={
            "id": "req-1",
            "inputs": [{"name": "input", "shape": list(tensor.shape), "datatype": "FP32", "data": tensor.ravel().tolist()}],
        },
    ).json()
    assert body["model_name"] == MODEL and body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == "output" and output["datatype"] == "FP32" and output["shape"] == [1, 2]
    logits = np.asarray(output["data"])
    probabilities = np.exp(logits) / np.exp(logits).sum()
    classified = client.post("/classify", content=image).json()["probabilities"]
    assert np.allclose(probabilities, [classified["NORMAL"], classified["PNEUMONIA"]], atol=1e-5)


BAD_TENSORS = [
    ("wrong shape", {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}, "must have shape"),
    ("wrong dtype", {"name": "input", "shape": [1, 150, 150, 3], "datatype": "INT8", "data": [0] * 67500}, "FP32"),
    ("wrong name", {"name": "pixels", "shape": [1, 150, 150, 3], "datatype": "FP32", "data": [0] * 67500}, "unknown input"),
    ("data/shape mismatch", {"name": "input", "shape": [1, 150, 150, 3], "datatype": "FP32", "data": [0.0]}, "needs 67500"),
]


@pytest.mark.parametrize(("case", "tensor", "reason"), BAD_TENSORS, ids=[b[0] for b in BAD_TENSORS])
def test_bad_tensors_are_400(client, case, tensor, reason):
    response = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": [tensor]})
    assert response.status_code == 400, case
    assert reason in response.json()["error"]


def test_malformed_request_and_unknown_model(client):
    response = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": "x"})
    assert response.status_code == 400 and "inputs" in response.json()["error"]
    response = client.get("/v2/models/nope")
    assert response.status_code == 404 and "unknown model" in response.json()["error"]
    response = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert response.status_code in (400, 404)
