"""A client that leaves costs no full report: its backend calls are cancelled and vLLM aborts them.

Shown from the report server's own Prometheus metrics: the request stops running before its
structured report is complete, and it never finishes (`vllm:request_success_total`,
which counts requests that end with stop or length, does not move; vLLM counts a client's
abort there not at all).
"""

import asyncio
import re
from dataclasses import dataclass

import httpx

from tests.conftest import data_uri, gateway_url
from tests.waiting import wait_until

LONG_REPORT = 1500  # ~100 s of generation on this machine: only an abort ends it within the wait below


@dataclass(frozen=True)
class ReportServer:
    running: float
    finished: float  # requests that ended normally, any finish reason
    generated: float  # generation tokens so far


def _values(name: str, text: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE)]


def report_server(stack) -> ReportServer:
    text = httpx.get(f"{stack.url('report')}/metrics", timeout=10).text
    return ReportServer(
        running=sum(_values("vllm:num_requests_running", text)),
        finished=sum(_values("vllm:request_success_total", text)),
        generated=sum(_values("vllm:generation_tokens_total", text)),
    )


def idle(stack) -> ReportServer:
    """The report server once it runs nothing (earlier tests' requests have ended)."""
    wait_until(lambda: report_server(stack).running == 0.0, 120, "earlier requests ended")
    return report_server(stack)


def assert_aborted(stack, before: ReportServer) -> None:
    wait_until(lambda: report_server(stack).running == 0.0, 30, "the report generation stopped")
    after = report_server(stack)
    assert after.finished == before.finished  # it did not run to its end: it was aborted
    assert 0 < after.generated - before.generated < LONG_REPORT / 4


def body(image: bytes, stream: bool) -> dict:
    return {
        "model": "cxr-report",
        "stream": stream,
        "max_completion_tokens": LONG_REPORT,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(image)}}]}],
    }


def test_leaving_a_stream_aborts_the_report_generation(stack, sample_images):
    before = idle(stack)
    image = sample_images["person1946_bacteria_4874.jpeg"]
    with httpx.stream("POST", f"{gateway_url(stack)}/v1/chat/completions", json=body(image, True), timeout=300) as response:
        lines = response.iter_lines()  # kept referenced: a dropped iterator would close the connection now
        first = next(line for line in lines if line.startswith("data: "))
        assert '"role":"assistant"' in first  # the headers and the role chunk come at once
        assert any("cxr_findings" in line for line in lines)  # stage one is done; the report is being written
        wait_until(lambda: report_server(stack).running >= 1, 10, "the report model started")
        # the client now leaves, before the validated report is sent
    assert_aborted(stack, before)


def test_leaving_a_non_streamed_request_aborts_the_report_generation(stack, sample_images):
    before = idle(stack)
    image = sample_images["NORMAL2-IM-1427-0001.jpeg"]

    async def leave_once_the_report_runs() -> None:
        async with httpx.AsyncClient(timeout=300) as client:
            request = asyncio.create_task(client.post(f"{gateway_url(stack)}/v1/chat/completions", json=body(image, False)))
            while report_server(stack).running < 1:  # the pipeline has reached the report model
                assert not request.done(), "the request finished before the report model started"
                await asyncio.sleep(0.2)
            request.cancel()  # closes the connection: the client is gone

    asyncio.run(leave_once_the_report_runs())
    assert_aborted(stack, before)
