"""Resume (§14), session limits (§15) and the races of the dynamics issue, on virtual time."""

from __future__ import annotations

import numpy as np

from tests.harness import Harness, silence, tone
from vocalis.session.hooks import Credential
from vocalis.settings import Settings


def second(h: Harness, credential: Credential | None = None) -> Harness:
    """Another connection to the same server (same manager and clock)."""
    return Harness(settings=h.settings, manager=h.manager, clock=h.clock, credential=credential)


async def test_resume_after_unclean_disconnect(harness: Harness) -> None:
    ready = await harness.start({"system_prompt": "Be brief."})
    await harness.send({"type": "conversation.message", "role": "user", "content": "hi"})
    harness.conn.on_disconnect()
    await harness.wait(10)
    h2 = second(
        harness, Credential("resume", session_id=ready["session_id"], token=ready["resume_token"])
    )
    await h2.send({"type": "session.resume", "session_id": ready["session_id"]})
    again = h2.transport.last("session.ready")
    assert h2.transport.types() == ["session.ready"]  # no session.updated, no greeting
    for key in ("session_id", "expires_at", "resume_token"):
        assert again[key] == ready[key]
    assert again["config"]["system_prompt"] == "Be brief."
    assert [e.text for e in h2.session().history.entries] == ["hi"]
    await h2.send({"type": "reply.create"})
    await h2.until("reply.done")
    assert h2.transport.last("transcript.agent")["text"] == "You said: hi"


async def test_grace_expiry_ends_the_session(harness: Harness) -> None:
    ready = await harness.start()
    harness.conn.on_disconnect()
    await harness.wait(29)
    assert harness.manager.get(ready["session_id"]) is not None
    await harness.wait(2)
    assert harness.manager.get(ready["session_id"]) is None
    h2 = second(harness)
    await h2.send({"type": "session.resume", "session_id": ready["session_id"]})
    err = h2.transport.last("session.error")
    assert err["code"] == "session_not_found" and h2.transport.closed_with == 1008
    assert err["message"] == "Session not found or grace window has expired"


async def test_reply_in_flight_at_drop_ends_interrupted_with_played_text(harness: Harness) -> None:
    text = "This is a rather long greeting that keeps on going for quite a while."
    await harness.start({"greeting": text})
    await harness.wait(1.0)
    harness.conn.on_disconnect()
    entries = harness.session().history.entries
    assert entries and entries[-1].role == "assistant"
    assert text.startswith(entries[-1].text) and entries[-1].text != text


async def test_pending_call_survives_disconnect_and_result_after_resume(harness: Harness) -> None:
    tool = {"type": "function", "name": "t", "parameters": {"type": "object", "properties": {}}}
    ready = await harness.start({"tools": [tool]})
    await harness.send({"type": "conversation.message", "role": "user", "content": "call t {}"})
    await harness.send({"type": "reply.create"})
    await harness.wait(1)
    call_id = harness.transport.last("tool.call")["call_id"]
    harness.conn.on_disconnect()
    await harness.wait(5)
    h2 = second(harness)
    await h2.send({"type": "session.resume", "session_id": ready["session_id"]})
    assert not h2.transport.of("tool.call")  # never re-sent
    await h2.send({"type": "tool.result", "call_id": call_id, "result": "done"})
    await h2.until("reply.done")
    assert h2.transport.last("transcript.agent")["text"] == "Tool result: done."


async def test_resume_takes_over_an_attached_session(harness: Harness) -> None:
    ready = await harness.start()
    h2 = second(harness)
    await h2.send({"type": "session.resume", "session_id": ready["session_id"]})
    assert harness.transport.closed_with == 1001
    assert h2.transport.last("session.ready")["session_id"] == ready["session_id"]
    before = len(harness.transport.events)
    await h2.send({"type": "conversation.message", "role": "user", "content": "x"})
    await h2.send({"type": "reply.create"})
    await h2.until("reply.done")
    assert len(harness.transport.events) == before  # nothing more on the old socket


async def test_two_resumes_at_once_leave_one_attached(harness: Harness) -> None:
    ready = await harness.start()
    harness.conn.on_disconnect()
    a, b = second(harness), second(harness)
    msg = {"type": "session.resume", "session_id": ready["session_id"]}
    await a.conn.on_text(__import__("json").dumps(msg))
    await b.conn.on_text(__import__("json").dumps(msg))
    await harness.clock.settle()
    assert a.transport.closed_with == 1001 and b.transport.closed_with is None
    assert harness.session().is_attached_to(b.transport)


async def test_resume_with_another_sessions_token_is_forbidden(harness: Harness) -> None:
    first = await harness.start()
    other = second(harness)
    other_ready = await other.start()
    h3 = second(harness, Credential("resume", session_id=other_ready["session_id"], token="t"))
    await h3.send({"type": "session.resume", "session_id": first["session_id"]})
    err = h3.transport.last("session.error")
    assert err["code"] == "session_forbidden" and h3.transport.closed_with == 1008
    assert err["message"] == "Credential is not allowed to resume this session"


async def test_session_end_during_reply_stops_everything(harness: Harness) -> None:
    await harness.start({"greeting": "A fairly long greeting for the caller to hear."})
    await harness.wait(0.5)
    await harness.send({"type": "session.end"})
    t = harness.transport
    assert t.types()[-1] == "session.ended" and t.closed_with == 1000
    ended = t.last("session.ended")
    assert ended["reason"] == "client_end" and ended["audio_duration_seconds"] is None
    n = len(t.events)
    await harness.wait(5)
    assert len(t.events) == n
    assert harness.session().history.entries[-1].text  # played part recorded


async def test_disconnect_during_tool_call_then_timeout_keeps_running(harness: Harness) -> None:
    tool = {"type": "function", "name": "t", "timeout_seconds": 5}
    ready = await harness.start({"tools": [tool]})
    await harness.send({"type": "conversation.message", "role": "user", "content": "call t {}"})
    await harness.send({"type": "reply.create"})
    await harness.wait(1)
    harness.conn.on_disconnect()
    await harness.wait(6)  # the call times out while detached; follow-up waits for resume
    h2 = second(harness)
    await h2.send({"type": "session.resume", "session_id": ready["session_id"]})
    await h2.until("reply.done")
    assert "did not respond in time" in h2.transport.last("transcript.agent")["text"]


async def test_duration_cap_from_token() -> None:
    h = Harness(credential=Credential("temporary", max_session_duration_seconds=60))
    ready = await h.start()
    assert ready["expires_at"] == int(h.clock.wall() + 60)
    await h.wait(61)
    assert h.transport.last("session.ended")["reason"] == "max_duration"
    assert h.transport.closed_with == 1000


async def test_idle_timeout() -> None:
    h = Harness(
        settings=Settings(providers="fake", idle_timeout_seconds=10, legacy_ready_timeout_seconds=0)
    )
    await h.start()
    await h.stream(silence(5000))
    await h.send({"type": "conversation.message", "role": "user", "content": "x"})
    await h.stream(silence(8000))
    assert not h.transport.of("session.ended")  # streamed silence does not reset, messages do
    await h.stream(silence(3000))
    assert h.transport.last("session.ended")["reason"] == "idle_timeout"


async def test_barge_in_while_tool_result_arrives(harness: Harness) -> None:
    tool = {"type": "function", "name": "t"}
    await harness.start({"tools": [tool]})
    await harness.send(
        {
            "type": "conversation.message",
            "role": "user",
            "content": "Working on it, one moment please.\ncall t {}",
        }
    )
    await harness.send({"type": "reply.create"})
    await harness.wait(0.3)
    call_id = harness.transport.last("tool.call")["call_id"]
    await harness.stream(tone(200))  # barge-in condition 1 holds: audio paused
    await harness.send({"type": "tool.result", "call_id": call_id, "result": "ok"})
    await harness.stream(np.concatenate([tone(300), silence(1500)]))
    await harness.until("reply.done", count=2)
    t = harness.transport
    assert t.of("reply.done")[0]["status"] == "interrupted"
    # the result arrived before the interruption: it stays in the history
    msgs = harness.session().history.messages("sys")
    assert [m.content for m in msgs if m.role == "tool"] == ["ok"]
