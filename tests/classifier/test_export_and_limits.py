"""The ResNet export tool, a 224x224 NCHW model served by metadata alone, the queue limit and timeouts."""

import asyncio
import json

import httpx
import onnx
import pytest
import torch

from scripts.classifier_export import PARITY_TOLERANCE, REFERENCE_FILE
from services.contract.classifier_model import ModelMetadata
from services.contract.modelcard import file_sha256


def test_resnet_export_writes_onnx_pt2_metadata_and_passes_parity(resnet_export):
    folder = resnet_export.onnx_path.parent
    assert resnet_export.max_abs_diff <= PARITY_TOLERANCE
    metadata = ModelMetadata.read(resnet_export.onnx_path)
    assert metadata.onnx_sha256 == file_sha256(resnet_export.onnx_path)
    assert (metadata.input.height, metadata.input.layout, metadata.input.resize) == (224, "NCHW", "bilinear")
    graph_input = onnx.load(str(resnet_export.onnx_path)).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    program = torch.export.load(folder / "model.pt2")
    assert program.module()(torch.zeros(3, 3, 224, 224)).shape == (3, 2)
    assert len(json.loads((folder / REFERENCE_FILE).read_text())["framework_outputs"]) == 16


async def test_a_224_nchw_resnet_runs_by_its_metadata_alone(resnet_export, start_worker, sample_images):
    url = start_worker(resnet_export.onnx_path)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        meta = (await client.get(f"/v2/models/{resnet_export.metadata.name}")).json()
        answer = (await client.post("/classify", content=next(iter(sample_images.values())))).json()
    assert meta["inputs"][0]["shape"] == [-1, 3, 224, 224]
    reference = json.loads((resnet_export.onnx_path.parent / REFERENCE_FILE).read_text())["framework_outputs"]
    logits = torch.tensor(reference[next(iter(sample_images))])
    expected = torch.softmax(logits, 0).tolist()
    assert answer["probabilities"]["NORMAL"] == pytest.approx(expected[0], abs=1e-4)


async def test_a_full_queue_answers_503_with_retry_after(start_worker, sample_images):
    url = start_worker("models/pneumonia-classifier/model.onnx", max_queue=1, max_batch_size=1, max_wait_ms=0)
    image = next(iter(sample_images.values()))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        responses = await asyncio.gather(*(client.post("/classify", content=image) for _ in range(24)))
        statuses = [r.status_code for r in responses]
        assert 200 in statuses and 503 in statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert int(refused.headers["retry-after"]) >= 1
        assert "queue is full" in refused.json()["error"]
        assert (await client.post("/classify", content=image)).status_code == 200  # still serving


async def test_a_request_past_its_deadline_is_504(start_worker, sample_images):
    url = start_worker("models/pneumonia-classifier/model.onnx", request_timeout_s=0.001)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        response = await client.post("/classify", content=next(iter(sample_images.values())))
    assert response.status_code == 504
    assert "no result within" in response.json()["error"]
