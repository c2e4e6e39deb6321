"""NVIDIA's `tritonclient`, the Open Inference Protocol's reference client, against the running worker.

Everything a Triton client does with a model: health, server and model
metadata, model configuration, repository index, statistics, versioned
routes, and inference with JSON and binary tensors in both directions, whose
results must equal the worker's own /classify on the same X-ray.
"""

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from scripts import triton_repository
from services.contract import images as preprocess
from services.contract import tensors
from services.contract.classifier_model import ModelMetadata
from tests.classifier.conftest import MODEL_DIR

MODEL = "pneumonia-classifier"
SAMPLE = "NORMAL2-IM-1427-0001.jpeg"


@pytest.fixture(scope="module")
def client(classifier_url):
    return triton.InferenceServerClient(classifier_url.removeprefix("http://"), network_timeout=60)


@pytest.fixture(scope="module")
def metadata():
    return ModelMetadata.read(MODEL_DIR / "model.onnx")


@pytest.fixture(scope="module")
def version(client):
    return client.get_model_metadata(MODEL)["versions"][0]


@pytest.fixture(scope="module")
def xray(sample_images, metadata):
    """One sample preprocessed as the gateway does, and the worker's own /classify answer for it."""
    return preprocess.prepare(sample_images[SAMPLE], metadata.input, 50_000_000)[np.newaxis]


@pytest.fixture(scope="module")
def classified(classifier_url, sample_images, metadata):
    probabilities = httpx.post(f"{classifier_url}/classify", content=sample_images[SAMPLE], timeout=60).json()["probabilities"]
    return np.asarray([probabilities[name] for name in metadata.classes])


def _softmax(logits):
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def test_health_and_metadata(client, version, metadata):
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, version)
    body = client.get_model_metadata(MODEL, version)
    assert body["inputs"] == [{"name": metadata.input.name, "datatype": "FP32", "shape": [-1, 150, 150, 3]}]
    assert client.get_model_repository_index() == [{"name": MODEL, "version": version, "state": "READY"}]


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_infer_matches_classify(client, version, xray, classified, binary_in, binary_out):
    tensor = triton.InferInput("input", list(xray.shape), "FP32")
    tensor.set_data_from_numpy(xray, binary_data=binary_in)
    result = client.infer(
        MODEL, [tensor], outputs=[triton.InferRequestedOutput("output", binary_data=binary_out)], model_version=version
    )
    (output,) = result.get_response()["outputs"]
    assert ("parameters" in output) is binary_out  # binary_data_size only when asked for
    assert np.allclose(_softmax(result.as_numpy("output")[0]), classified, atol=1e-5)


def test_a_batch_of_two_and_the_default_binary_output(client, xray, classified):
    batch = np.concatenate([xray, xray])
    tensor = triton.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    logits = client.infer(MODEL, [tensor], request_id="r-7").as_numpy("output")  # no outputs named: all in binary
    assert logits.shape == (2, 2)
    assert np.allclose(_softmax(logits[1]), classified, atol=1e-5)


def test_statistics_count_the_inferences(client, version, xray):
    before = client.get_inference_statistics(MODEL, version)["model_stats"][0]
    tensor = triton.InferInput("input", list(xray.shape), "FP32")
    tensor.set_data_from_numpy(xray)
    client.infer(MODEL, [tensor])
    after = client.get_inference_statistics(MODEL)["model_stats"][0]
    assert after["inference_count"] >= before["inference_count"] + 1  # and a gateway probe may have run too
    assert after["inference_stats"]["success"]["count"] >= before["inference_stats"]["success"]["count"] + 1
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]


def test_model_config_is_the_shipped_config_pbtxt(client, tmp_path):
    """The worker's configuration equals the Triton repository entry the tool writes for the same profile."""
    served = json_format.ParseDict(client.get_model_config(MODEL), model_config_pb2.ModelConfig())
    entry = triton_repository.write(tmp_path, "cpu")
    shipped = text_format.Parse((entry / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert served == shipped
    assert served.max_batch_size >= 1 and served.input[0].dims == [150, 150, 3]
    assert (entry / "1" / "model.onnx").read_bytes() == (MODEL_DIR / "model.onnx").read_bytes()


def test_the_gpu_profile_entry_parses_as_a_gpu_instance(tmp_path):
    entry = triton_repository.write(tmp_path, "gpu")
    shipped = text_format.Parse((entry / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert shipped.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert shipped.platform == "onnxruntime_onnx"


def test_protocol_errors_reach_the_client_as_messages(client, version):
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="has no version '7'"):
        client.get_model_config(MODEL, "7")
    assert not client.is_model_ready(MODEL, "7")
    tensor = triton.InferInput("input", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="must have shape"):
        client.infer(MODEL, [tensor], model_version=version)


def _post(classifier_url, body, headers):
    return httpx.post(f"{classifier_url}/v2/models/{MODEL}/infer", content=body, headers=headers, timeout=60)


BAD_BINARY = [
    ("header length beyond the body", lambda head, raw: (head + raw, {tensors.HEADER_LENGTH: str(len(head + raw) + 1)})),
    ("header length not a number", lambda head, raw: (head + raw, {tensors.HEADER_LENGTH: "12a"})),
    ("binary part cut short", lambda head, raw: (head + raw[:-4], {tensors.HEADER_LENGTH: str(len(head))})),
    ("bytes left over", lambda head, raw: (head + raw + b"\0" * 4, {tensors.HEADER_LENGTH: str(len(head))})),
    ("header not JSON", lambda head, raw: (b"{" + raw, {tensors.HEADER_LENGTH: "1"})),
]


@pytest.mark.parametrize(("case", "build"), BAD_BINARY, ids=[case for case, _ in BAD_BINARY])
def test_malformed_binary_requests_are_400_in_the_protocol_shape(classifier_url, xray, case, build):
    body, headers = tensors.message({"inputs": [tensors.entry("input", xray, binary=True)]}, [xray])
    head = body[: int(headers[tensors.HEADER_LENGTH])]
    response = _post(classifier_url, *build(head, xray.astype("<f4").tobytes()))
    assert response.status_code == 400, case
    assert set(response.json()) == {"error"}, case


def test_unknown_routes_and_methods_answer_the_protocol_error_shape(classifier_url):
    missing = httpx.get(f"{classifier_url}/v2/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong_method = httpx.delete(f"{classifier_url}/v2")
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error"}
