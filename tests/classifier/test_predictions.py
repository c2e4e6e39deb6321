"""The ONNX model through the worker's HTTP API agrees with the Keras model it was exported from."""

import asyncio

import httpx
import numpy as np

# The packaged model's known mistakes on its 16 validation images: the model's, not the export's
# (`make setup` fails if ONNX Runtime and Keras differ by over 1e-3).
KNOWN_WRONG = {"NORMAL2-IM-1438-0001.jpeg", "person1949_bacteria_4880.jpeg", "person1950_bacteria_4881.jpeg"}


async def _classify_all(url: str, images: dict[str, bytes]) -> dict[str, dict]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        responses = await asyncio.gather(*(client.post("/classify", content=data) for data in images.values()))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return {name: r.json() for name, r in zip(images, responses, strict=True)}


async def test_http_predictions_equal_the_keras_reference(classifier_url, sample_images, keras_reference, labels):
    answers = await _classify_all(classifier_url, sample_images)
    for name, answer in answers.items():
        reference = keras_reference[name]
        assert answer["predicted_class"] == ["NORMAL", "PNEUMONIA"][int(np.argmax(reference))], name
        got = np.array([answer["probabilities"]["NORMAL"], answer["probabilities"]["PNEUMONIA"]])
        assert np.max(np.abs(got - reference)) < 1e-4, name
    wrong = {name for name, answer in answers.items() if answer["predicted_class"] != labels[name]}
    assert wrong == KNOWN_WRONG
    assert len(answers) - len(wrong) == 13


async def test_classify_reports_the_model_and_its_provider(classifier_url, sample_images):
    async with httpx.AsyncClient(base_url=classifier_url, timeout=60) as client:
        answer = (await client.post("/classify", content=next(iter(sample_images.values())))).json()
    assert answer["model"]["provider"] == "CPUExecutionProvider"  # no GPU here: never claims CUDA
    assert len(answer["model"]["sha256"]) == 64
    assert answer["model"]["clinical_use"] is False
    assert answer["latency_ms"] > 0
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-5
