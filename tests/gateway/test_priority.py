"""STAT first, in-process (the real-stack side: tests/gateway/test_priority_stack.py): the slots admission keeps
for STAT, and the engine priority every model call of a STAT pipeline carries."""

from __future__ import annotations

import pytest

from gateway.admission import ConcurrencyLimit, stat_reserve
from gateway.backends.calls import ChatCall, Sampling
from gateway.errors import BackendSaturated
from gateway.pipeline.events import Completed
from gateway.pipeline.stages import PipelineRequest
from services.contract.priority import Priority
from services.contract.roles import Role
from tests.gateway.test_pipeline_events import PIECES, Fracture, Report, StandInClassifier, in_flight, load_xray, pipeline, slots


@pytest.mark.parametrize(("limit", "share", "kept"), [(64, 0.25, 16), (4, 0.25, 1), (2, 0.5, 1), (1, 0.9, 0), (8, 0.0, 0)])
def test_the_reserve_is_the_share_rounded_up_and_always_leaves_routine_work_a_slot(limit, share, kept):
    assert stat_reserve(limit, share) == kept


def test_routine_work_stops_at_the_reserve_and_stat_takes_it():
    limit = ConcurrencyLimit("report", 4, stat_share=0.5)  # two kept for STAT
    routine = [limit.acquire(Priority.ROUTINE) for _ in range(2)]
    with pytest.raises(BackendSaturated, match=r"\(2 in flight; 2 more kept for STAT requests\)") as refused:
        limit.acquire(Priority.ROUTINE)
    assert refused.value.status == 429
    stat = [limit.acquire(Priority.STAT) for _ in range(2)]
    with pytest.raises(BackendSaturated, match=r"\(4 in flight\)"):  # STAT beyond the reserve is refused too
        limit.acquire(Priority.STAT)
    limit.release(routine[0])  # 3 in flight, 2 of them STAT: routine work counts every slot held, STAT's too
    with pytest.raises(BackendSaturated):
        limit.acquire(Priority.ROUTINE)
    for ticket in [routine[1], *stat]:
        limit.release(ticket)


def test_a_call_carries_the_engine_priority_only_when_stat():
    call = ChatCall("report-llm", [{"role": "user", "content": "x"}], Sampling(max_tokens=4))
    assert "priority" not in call.body() and call.engine_fields() == {}
    stat = ChatCall("report-llm", call.messages, call.sampling, priority=Priority.STAT)
    assert stat.body()["priority"] == -1 and stat.engine_fields() == {"priority": -1}
    assert "priority" not in stat.arguments()  # the SDK sends it as extra_body


async def test_a_stat_pipeline_is_admitted_into_the_reserve_and_asks_each_engine_for_priority():
    fracture, report, admission = Fracture(), Report(PIECES), slots(report=2, stat_share=0.5)
    held = admission.admit(Role.REPORT)  # routine work holds the one routine report slot
    with pytest.raises(BackendSaturated, match="kept for STAT"):
        await anext(
            pipeline(StandInClassifier(), Fracture(), Report(PIECES), admission=admission).events(
                PipelineRequest(image=load_xray, language="en")
            )
        )
    run = pipeline(StandInClassifier(), fracture, report, admission=admission)
    got = [e async for e in run.events(PipelineRequest(image=load_xray, language="en", priority=Priority.STAT))]
    assert isinstance(got[-1], Completed) and got[-1].result.status == "complete"
    assert [c.engine_fields() for c in (*fracture.calls, *report.calls)] == [{"priority": -1}, {"priority": -1}]
    held.release()
    assert in_flight(admission) == (0, 0, 0)


WRITTEN = [(None, "routine"), ("", "routine"), ("STAT", "stat"), (" routine ", "routine"), ("urgent", None)]


@pytest.mark.parametrize(("written", "read"), WRITTEN)
def test_a_priority_is_read_in_any_case_and_anything_else_is_not_one(written, read):
    assert Priority.named(written) == (Priority(read) if read else None)
