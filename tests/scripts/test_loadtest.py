"""A seconds-long smoke run of the load-test harness: zero errors and the right shapes (not timings)."""

import itertools
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


def test_poisson_arrivals_have_the_rate_asked_and_exponential_gaps():
    times = loadtest.arrivals(20.0, 100.0, loadtest.random.Random(7))
    assert 1900 < len(times) < 2100 and times == sorted(times) and times[0] > 0 and times[-1] < 100.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    assert 0.045 < mean < 0.055  # 1 / rate
    assert 0.6 < sum(g < mean for g in gaps) / len(gaps) < 0.665  # P(gap < mean) = 1 - 1/e = 0.632: exponential


def _rate(rate: float, p95: float, errors: dict | None = None) -> loadtest.RateResult:
    latency = {"p50": p95 / 2, "p95": p95, "p99": p95, "mean": p95 / 2}
    return loadtest.RateResult(rate, 10, 10.0, rate, latency, {}, errors or {})


def test_the_sustainable_rate_is_the_highest_within_the_objective_with_every_lower_rate_too():
    assert loadtest.sustainable([_rate(0.1, 5000), _rate(0.2, 9000), _rate(0.4, 20000)], 10000) == 0.2
    assert loadtest.sustainable([_rate(0.1, 5000), _rate(0.2, 12000), _rate(0.3, 9000)], 10000) == 0.1  # noise above
    assert loadtest.sustainable([_rate(0.1, 5000, {"http_429": 1})], 10000) is None  # a refusal is not sustained


async def test_an_open_loop_run_against_the_stack_sends_on_schedule(stack, tmp_path):
    client = loadtest.openai.AsyncOpenAI(base_url=f"{gateway_url(stack)}/v1", api_key="unused", max_retries=0)
    workload = loadtest.Workload(client, "report-llm", 4)
    result = await loadtest.run_rate(workload, ["chat"], 4.0, 3.0, seed=3)
    await client.close()
    assert result.errors == {} and result.requests == len(loadtest.arrivals(4.0, 3.0, loadtest.random.Random(3)))
    assert result.send_lag_ms["p99"] < 100  # the harness kept to the schedule: the latencies are the server's
    assert result.latency_ms["p50"] > 0 and result.throughput_rps > 0
    loadtest.plot_open_loop([result], tmp_path / "open.png", 1000)
    assert (tmp_path / "open.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
