"""A seconds-long smoke run of the load-test harness: zero errors and the right shapes (not timings)."""

import json

import pytest

from scripts import loadtest
from tests.conftest import gateway_url


async def test_smoke_run_against_the_stack(stack, tmp_path):
    results = await loadtest.load_test(
        gateway_url(stack),
        "unused",
        levels=[3],
        kinds=loadtest.parse_mix("cxr=1,chat=1,stream=1"),
        requests=6,
        duration_s=None,
        chat_model="report-llm",
        max_tokens=8,
    )
    (level,) = results
    assert level.errors == {}
    assert level.requests == 6 and level.by_kind == {"cxr": 2, "chat": 2, "stream": 2}
    assert set(level.latency_ms) == {"p50", "p95", "p99", "mean"} and level.throughput_rps > 0
    assert level.ttft_ms["p50"] > 0  # streams measured their first token
    loadtest.plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps([loadtest.asdict(r) for r in results])  # serialisable as the JSON report


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://example.org", "http://192.168.1.2:80"])
def test_it_refuses_anything_but_loopback(url):
    with pytest.raises(SystemExit, match="only loopback"):
        loadtest.require_loopback(url)


def test_loopback_is_accepted():
    loadtest.require_loopback("http://127.0.0.1:8080")
    loadtest.require_loopback("http://localhost:8080")
