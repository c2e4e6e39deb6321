"""Dynamic batching is real: concurrent requests share ONNX Runtime runs."""

import asyncio

import httpx


def counter(metrics_text: str, name: str) -> float:
    line = next(line for line in metrics_text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


async def test_concurrent_requests_run_in_fewer_onnx_runs(classifier_url, sample_images):
    requests = 32
    images = list(sample_images.values())
    async with httpx.AsyncClient(base_url=classifier_url, timeout=60) as client:
        before = (await client.get("/metrics")).text
        responses = await asyncio.gather(*(client.post("/classify", content=images[i % len(images)]) for i in range(requests)))
        after = (await client.get("/metrics")).text
    assert all(r.status_code == 200 for r in responses)
    runs = counter(after, "classifier_onnx_runs_total") - counter(before, "classifier_onnx_runs_total")
    rows = counter(after, "classifier_onnx_rows_total") - counter(before, "classifier_onnx_rows_total")
    assert rows == requests
    assert runs < requests
