"""32 concurrent pipeline requests all succeed, and each request's classifier and VLM calls overlap."""

import asyncio

from tests.gateway.conftest import xray_message


async def test_32_concurrent_pipelines(async_client, sample_images):
    images = list(sample_images.values())
    completions = await asyncio.gather(
        *(
            async_client.chat.completions.create(model="cxr-report", messages=xray_message(images[i % len(images)]))
            for i in range(32)
        )
    )
    results = [c.model_extra["cxr"] for c in completions]
    assert all(r["status"] == "complete" for r in results)
    for timings in (r["timings_ms"] for r in results):
        classifier, fracture = timings["classifier"], timings["fracture"]
        classifier_end = classifier["started_ms"] + classifier["duration_ms"]
        fracture_end = fracture["started_ms"] + fracture["duration_ms"]
        # Both started before either finished: they ran concurrently, not one after the other.
        assert classifier["started_ms"] < fracture_end and fracture["started_ms"] < classifier_end
        assert timings["report"]["started_ms"] >= max(classifier_end, fracture_end) - 1
