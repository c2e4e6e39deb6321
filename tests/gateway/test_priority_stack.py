"""STAT first on the real stack: a gateway whose report backend has two slots, one kept for STAT
(GATEWAY_STAT_RESERVED_SHARE=0.5), in front of the session's vLLM servers (deploy/models.yaml runs them with
--scheduling-policy priority, so a STAT call's `priority` is accepted, and a vLLM without it would refuse it)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.gateway.conftest import xray_message

SAY = [{"role": "user", "content": "Count slowly from one to one hundred."}]


@pytest.fixture
def reserved(start_gateway):
    return start_gateway(GATEWAY_REPORT_MAX_CONCURRENCY="2", GATEWAY_STAT_RESERVED_SHARE="0.5")


def _sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=600)


def test_while_routine_work_holds_its_slots_routine_is_refused_and_stat_is_served(reserved, sample_images):
    client = _sdk(reserved)
    body = {"model": "report-llm", "messages": SAY, "max_tokens": 400, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{reserved.url}/v1/chat/completions", json=body, timeout=600) as held:
        assert held.status_code == 200
        lines = held.iter_lines()  # one iterator, kept: a discarded one closes the stream
        assert next(lines).startswith("data: ")  # routine work holds the one routine slot, generating
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="report-llm", messages=SAY, max_tokens=4)
        assert "1 more kept for STAT requests" in refused.value.message
        assert refused.value.response.headers["retry-after"].isdigit()
        stat = client.chat.completions.create(model="report-llm", messages=SAY, max_tokens=4, metadata={"priority": "stat"})
        assert stat.choices[0].message.content  # vLLM took the call with priority -1
        xray = sample_images["person1946_bacteria_4874.jpeg"]
        answer = client.chat.completions.create(model="cxr-report", messages=xray_message(xray), metadata={"priority": "stat"})
        assert answer.model_extra["cxr"]["warnings"] == []  # ChexFract and the report model both took it as STAT
        assert sum(1 for line in lines if line.startswith("data: {")) > 300  # the routine stream, served all along
    routine, stat = ("report-llm", "routine"), ("report-llm", "stat")
    # The held stream's line is written once the gateway has seen the client close it: wait for all four lines.
    deadline = time.monotonic() + 10
    while len(requests := _chat_lines(reserved.log_text())) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests == [("cxr-report", "stat", 200), (*routine, 200), (*routine, 429), (*stat, 200)]


def test_the_engines_priority_is_the_gateways_to_set_and_an_unknown_priority_is_a_400(reserved):
    client = _sdk(reserved)
    with pytest.raises(openai.BadRequestError) as own:
        client.chat.completions.create(model="report-llm", messages=SAY, max_tokens=4, extra_body={"priority": -100})
    assert own.value.param == "priority"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model="report-llm", messages=SAY, max_tokens=4, metadata={"priority": "urgent"})
    assert unknown.value.param == "metadata.priority" and "stat, routine" in unknown.value.message


def _chat_lines(log: str) -> list[tuple[str, str, int]]:
    logged = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return sorted((e.get("model"), e.get("priority"), e["status"]) for e in logged if e.get("path") == "/v1/chat/completions")
