"""Tool calling (§13) on virtual time: dispatch, results, follow-ups, timeouts, modes."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.harness import Harness, silence, tone
from vocalis.providers.base import TextDelta, ToolCallRequest
from vocalis.session.tools import MAX_TOOL_ROUNDS

LOOKUP = {
    "type": "function",
    "name": "lookup_order",
    "description": "Look up an order by id.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "pattern": "ORD-[0-9]{5}"}},
        "required": ["order_id"],
    },
}


def tool(**overrides: Any) -> dict[str, Any]:
    return {**LOOKUP, **overrides}


async def ask(h: Harness, text: str) -> None:
    await h.send({"type": "conversation.message", "role": "user", "content": text})
    await h.send({"type": "reply.create"})


async def test_call_then_result_after_reply_done_starts_followup(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(1)
    t = harness.transport
    call = t.last("tool.call")
    assert call["name"] == "lookup_order"
    assert call["arguments"] == call["args"] == {"order_id": "ORD-48152"}
    assert call["call_id"].startswith("call_") and call["reply_id"].startswith("resp_")
    assert t.types()[-4:] == ["reply.started", "tool.call", "transcript.agent", "reply.done"]
    assert t.last("transcript.agent")["text"] == ""
    await harness.wait(2)
    assert len(t.of("reply.started")) == 1  # no follow-up before the result
    await harness.send(
        {"type": "tool.result", "call_id": call["call_id"], "result": {"status": "shipped"}}
    )
    await harness.until("reply.done", count=2)
    assert t.last("transcript.agent")["text"] == 'Tool result: {"status":"shipped"}.'


async def test_result_before_reply_done_is_kept_and_followup_waits(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(harness, 'Let me check.\ncall lookup_order {"order_id": "ORD-48152"}')
    t = harness.transport
    call = t.last("tool.call")
    assert not t.of("reply.done")  # "Let me check." is still playing
    await harness.send({"type": "tool.result", "call_id": call["call_id"], "result": "shipped"})
    await harness.until("reply.done", count=2)
    done = t.of("reply.done")
    assert [d["status"] for d in done] == ["completed", "completed"]
    types = t.types()
    first_done = types.index("reply.done")
    assert types.index("reply.started", first_done) > first_done
    assert t.of("transcript.agent")[0]["text"] == "Let me check."
    assert t.last("transcript.agent")["text"] == "Tool result: shipped."


async def test_parallel_calls_need_every_result(harness: Harness) -> None:
    other = tool(name="track", parameters={"type": "object", "properties": {}})
    await harness.start({"tools": [tool(), other]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-00001"}\ncall track {}')
    await harness.wait(1)
    calls = harness.transport.of("tool.call")
    assert [c["name"] for c in calls] == ["lookup_order", "track"]
    await harness.send({"type": "tool.result", "call_id": calls[0]["call_id"], "result": "a"})
    await harness.wait(1)
    assert len(harness.transport.of("reply.started")) == 1
    await harness.send({"type": "tool.result", "call_id": calls[1]["call_id"], "result": "b"})
    await harness.until("reply.done", count=2)
    assert harness.transport.last("transcript.agent")["text"] == "Tool result: a; b."


async def test_invalid_arguments_are_not_dispatched(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(harness, 'call lookup_order {"order_id": "nope"}')
    await harness.until("reply.done")
    assert not harness.transport.of("tool.call")
    # the model was told why, so it can ask the user again (§13.1)
    assert "must match the pattern" in harness.transport.last("transcript.agent")["text"]


async def test_unknown_and_duplicate_results(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await harness.send({"type": "tool.result", "call_id": "call_x", "result": "r"})
    err = harness.transport.last("session.error")
    assert err["code"] == "invalid_value" and err["message"] == "Unknown call_id 'call_x'"
    assert err["param"] == "call_id"
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(1)
    call_id = harness.transport.last("tool.call")["call_id"]
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "r"})
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "again"})
    await harness.wait(4)
    assert len(harness.transport.of("session.error")) == 1
    assert len(harness.transport.of("reply.started")) == 2


async def test_timeout_resolves_with_error_and_apology(harness: Harness) -> None:
    await harness.start({"tools": [tool(timeout_seconds=5)]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(4)
    assert len(harness.transport.of("reply.started")) == 1
    await harness.wait(2)
    await harness.until("reply.done", count=2)
    text = harness.transport.last("transcript.agent")["text"]
    assert "did not respond in time" in text
    call_id = harness.transport.last("tool.call")["call_id"]
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "late"})
    await harness.wait(3)
    assert len(harness.transport.of("reply.started")) == 2  # the late result is ignored
    turns = harness.session().timeline()["turns"]
    assert turns[0]["tool_calls"][0]["timed_out"] is True


async def test_barge_in_cancels_pending_calls(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(
        harness,
        'Let me check that order for you right away.\ncall lookup_order {"order_id": "ORD-48152"}',
    )
    call_id = harness.transport.last("tool.call")["call_id"]
    await harness.wait(0.5)
    await harness.stream(tone(400))
    assert harness.transport.last("reply.done")["status"] == "interrupted"
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "late"})
    assert not harness.transport.of("session.error")  # ignored silently
    history = harness.session().history
    msgs = history.messages("sys")
    tool_msgs = [m for m in msgs if m.role == "tool"]
    assert tool_msgs[0].content == "Cancelled: the user interrupted before this result was used."


async def test_pending_call_has_placeholder_and_conversation_continues(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(1)
    await ask(harness, "how are you")
    await harness.until("reply.done", count=2)
    assert harness.transport.last("transcript.agent")["text"] == "You said: how are you"
    msgs = harness.session().history.messages("sys")
    assert [m.content for m in msgs if m.role == "tool"] == ["Pending."]


async def test_hold_mode_buffers_user_transcripts(harness: Harness) -> None:
    await harness.start({"tools": [tool(execution_mode="hold")]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(1)
    call_id = harness.transport.last("tool.call")["call_id"]
    await harness.stream(np.concatenate([tone(600), silence(1500)]))
    t = harness.transport
    assert t.of("input.speech.stopped")
    assert not t.of("transcript.user") and not t.of("transcript.user.delta")
    assert len(t.of("reply.started")) == 1  # no reply while holding
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "ok"})
    await harness.until("reply.done", count=2)
    types = t.types()
    assert types.index("transcript.user") < types.index("reply.started", types.index("reply.done"))
    assert len(t.of("reply.started")) == 2  # one follow-up answers everything


async def test_reply_create_allowed_during_hold(harness: Harness) -> None:
    await harness.start({"tools": [tool(execution_mode="hold")]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(1)
    await harness.send({"type": "reply.create", "instructions": "Still checking."})
    await harness.until("reply.done", count=2)
    assert harness.transport.last("transcript.agent")["text"] == "Still checking."


async def test_chained_calls_then_tools_disabled_after_eight_rounds(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    session = harness.session()

    class Chain:
        """Calls the tool whenever it may; speaks once tools are withheld."""

        def __init__(self) -> None:
            self.tools_seen: list[int] = []

        async def stream(self, request: Any):  # type: ignore[no-untyped-def]
            self.tools_seen.append(len(request.tools))
            if request.tools:
                yield ToolCallRequest("lookup_order", {"order_id": "ORD-48152"})
            else:
                yield TextDelta("Done.")

    chain = Chain()
    session._llm = chain
    await harness.send({"type": "reply.create"})
    for _ in range(MAX_TOOL_ROUNDS):
        await harness.wait(0.5)
        call = harness.transport.last("tool.call")
        await harness.send({"type": "tool.result", "call_id": call["call_id"], "result": "x"})
    await harness.until("transcript.agent", count=MAX_TOOL_ROUNDS + 1)
    assert chain.tools_seen == [1] * MAX_TOOL_ROUNDS + [0]
    assert harness.transport.last("transcript.agent")["text"] == "Done."
    assert len(harness.transport.of("tool.call")) == MAX_TOOL_ROUNDS


async def test_tools_update_during_reply_keeps_pending_calls(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(harness, 'Checking now.\ncall lookup_order {"order_id": "ORD-48152"}')
    call_id = harness.transport.last("tool.call")["call_id"]
    await harness.send({"type": "session.update", "session": {"tools": []}})
    assert harness.transport.last("session.updated")["config"]["tools"] == []
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "ok"})
    await harness.until("reply.done", count=2)
    assert harness.transport.last("transcript.agent")["text"] == "Tool result: ok."


async def test_reply_create_during_reply_is_queued_not_merged(harness: Harness) -> None:
    await harness.start({"greeting": "Hello there, welcome to the shop."})
    await harness.wait(0.3)
    await harness.send({"type": "reply.create", "instructions": "First."})
    await harness.send({"type": "reply.create", "instructions": "Second."})
    await harness.until("reply.done", count=3)
    texts = [e["text"] for e in harness.transport.of("transcript.agent")]
    assert texts == ["Hello there, welcome to the shop.", "First.", "Second."]
    started = [e["reply_id"] for e in harness.transport.of("reply.started")]
    assert len(set(started)) == 3
    # replies never overlap
    seq = [
        e["type"] for e in harness.transport.events if e["type"] in ("reply.started", "reply.done")
    ]
    assert seq == ["reply.started", "reply.done"] * 3


async def test_too_many_queued_reply_creates(harness: Harness) -> None:
    await harness.start({"greeting": "Hello there, welcome to the shop."})
    for _ in range(9):
        await harness.send({"type": "reply.create"})
    err = harness.transport.last("session.error")
    assert err["code"] == "invalid_value" and err["message"] == "Too many queued replies"


async def test_result_object_is_json_encoded_and_truncated_for_model(harness: Harness) -> None:
    await harness.start({"tools": [tool()]})
    await ask(harness, 'call lookup_order {"order_id": "ORD-48152"}')
    await harness.wait(1)
    call_id = harness.transport.last("tool.call")["call_id"]
    big = "y" * 40_000
    await harness.send({"type": "tool.result", "call_id": call_id, "result": [1, {"a": big}]})
    msgs = harness.session().history.messages("sys")
    content = next(m.content for m in msgs if m.role == "tool")
    assert content.startswith('[1,{"a":"yyy') and len(content) == 32_768


async def test_transition_phrase_fills_a_silent_interactive_call() -> None:
    from vocalis.settings import Settings

    settings = Settings(
        providers="fake", legacy_ready_timeout_seconds=0, tool_transition_phrase="One moment."
    )
    h = Harness(settings=settings)
    hold_it = tool(name="hold_it", execution_mode="hold", parameters={"type": "object"})
    await h.start({"tools": [tool(), hold_it]})
    await ask(h, 'call lookup_order {"order_id": "ORD-48152"}')
    await h.until("reply.done")
    t = h.transport
    assert t.last("transcript.agent")["text"] == "One moment."
    assert t.types().index("tool.call") < t.types().index("transcript.agent.delta")
    # a hold call gets no phrase
    await ask(h, "call hold_it {}")
    await h.until("reply.done", count=2)
    assert t.last("transcript.agent")["text"] == ""
    await h.close()
