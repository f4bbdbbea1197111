"""The ordering guarantees of §9 observed on the real socket."""

from __future__ import annotations

import numpy as np

from tests.harness import pcm16_b64, silence, tone
from tests.integration.conftest import Event, MakeServer, WsServer

LONG_GREETING = "Hello there, this greeting is long enough to be interrupted."
REPLY_EVENTS = {"reply.started", "reply.audio", "transcript.agent.delta", "tool.call"}
REPLY_EVENTS |= {"transcript.agent", "reply.done", "reply.error"}


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events if e["type"] != "reply.audio"]


def check_replies(events: list[Event]) -> list[str]:
    """§9.3 and §9.4 over a stream of events; returns the reply ids in order."""
    current: str | None = None
    stage = "idle"
    order: list[str] = []
    said = ""
    for event in events:
        if event["type"] not in REPLY_EVENTS:
            continue
        kind, reply_id = event["type"], event["reply_id"]
        if kind == "reply.started":
            assert current is None, "a reply started before the previous reply.done"
            current, stage, said = reply_id, "body", ""
            order.append(reply_id)
            continue
        assert reply_id == current, f"{kind} of {reply_id} outside its reply"
        if kind in ("reply.audio", "transcript.agent.delta", "tool.call", "reply.error"):
            assert stage == "body", f"{kind} after transcript.agent"
            said += event.get("delta", "")
        elif kind == "transcript.agent":
            assert stage == "body"
            stage = "final"
            # deltas of a completed reply concatenate to its text; an interrupted one holds
            # only words that were sent
            if event["interrupted"]:
                assert said.startswith(event["text"])
            else:
                assert said == event["text"]
        else:  # reply.done
            assert stage == "final", "reply.done without transcript.agent right before it"
            current, stage = None, "idle"
    assert current is None, "a started reply never finished"
    return order


def test_nothing_is_sent_before_the_first_client_message(make_ws_server: MakeServer) -> None:
    server = make_ws_server(legacy_ready_timeout_seconds=0)
    with server.connect() as ws:
        ws.assert_quiet(0.5)
        ws.send({"type": "session.update", "session": {"greeting": "Hi."}})
        assert ws.recv()["type"] == "session.updated"


def test_updated_then_ready_then_greeting_and_one_ready_per_connection(
    ws_server: WsServer,
) -> None:
    with ws_server.connect() as ws:
        ws.send({"type": "session.update", "session": {"greeting": "Hi there."}})
        events = ws.until("reply.done")
        assert types(events)[:3] == ["session.updated", "session.ready", "reply.started"]
        check_replies(events)
        ws.send({"type": "session.update", "session": {"system_prompt": "Later."}})
        ws.expect("session.updated")
        ws.assert_quiet(0.2)
    assert [e["type"] for e in ws.events].count("session.ready") == 1


def test_replies_never_overlap(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"greeting": "Hi."})
        for text in ("One.", "Two.", "Three."):
            ws.send({"type": "reply.create", "instructions": text})
        events = ws.until("reply.done")
        while sum(e["type"] == "reply.done" for e in events) < 4:
            events += ws.until("reply.done")
    assert len(check_replies(events)) == 4
    finals = [e["text"] for e in events if e["type"] == "transcript.agent"]
    assert finals == ["Hi.", "One.", "Two.", "Three."]  # FIFO


def test_tool_call_lies_inside_its_reply(ws_server: WsServer) -> None:
    tool = {"name": "ping", "parameters": {"type": "object", "properties": {}}}
    with ws_server.connect() as ws:
        ws.start({"tools": [tool]})
        ws.send({"type": "conversation.message", "role": "user", "content": "call ping"})
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        call = next(e for e in events if e["type"] == "tool.call")
        ws.send({"type": "tool.result", "call_id": call["call_id"], "result": "pong"})
        events += ws.until("reply.done")
    assert len(check_replies(events)) == 2


def test_user_turn_order(ws_server: WsServer) -> None:
    turns = {"turn_detection": {"type": "server_vad", "min_silence": 300}}
    with ws_server.connect() as ws:
        ws.start({"input": turns})
        audio = np.concatenate([tone(700), silence(700)])
        ws.send({"type": "input.audio", "audio": pcm16_b64(audio)})
        events = ws.until("reply.done", skip_audio=True)
    order = types(events)
    stopped = order.index("input.speech.stopped")
    assert order[0] == "input.speech.started"
    assert order[1:stopped] and set(order[1:stopped]) == {"transcript.user.delta"}
    assert order[stopped + 1 : stopped + 3] == ["transcript.user", "reply.started"]
    assert order.count("input.speech.started") == order.count("input.speech.stopped") == 1
    check_replies(events)


def test_barge_in_order(ws_server: WsServer) -> None:
    turns = {"turn_detection": {"type": "server_vad", "min_silence": 300}}
    with ws_server.connect() as ws:
        ws.start({"greeting": LONG_GREETING, "input": turns})
        greeting_id = ws.expect("reply.started")["reply_id"]
        # the fake VAD hears a loud tone as speech; 600 ms > interruption_delay (200 ms)
        ws.send({"type": "input.audio", "audio": pcm16_b64(tone(600))})
        events = ws.until("transcript.user", skip_audio=True)
        ws.send({"type": "input.audio", "audio": pcm16_b64(silence(600))})
        events += ws.until("reply.done", skip_audio=True)
        after = ws.events[ws.events.index(events[0]) :]
    order = types(events)
    barge = order.index("input.speech.started")
    assert order[barge : barge + 3] == ["input.speech.started", "transcript.agent", "reply.done"]
    interrupted, done = events[barge + 1], events[barge + 2]
    assert (interrupted["reply_id"], interrupted["interrupted"]) == (greeting_id, True)
    assert LONG_GREETING.startswith(interrupted["text"])
    assert len(interrupted["text"]) < len(LONG_GREETING)
    assert (done["reply_id"], done["status"]) == (greeting_id, "interrupted")
    rest = order[barge + 3 :]
    assert "input.speech.stopped" in rest and "transcript.user" in rest
    assert rest.index("input.speech.stopped") < rest.index("transcript.user")
    assert rest.index("transcript.user") < rest.index("reply.started")
    # nothing more of the interrupted reply once the barge-in is announced
    start = next(i for i, e in enumerate(after) if e["type"] == "input.speech.started")
    later = [e for e in after[start:] if e.get("reply_id") == greeting_id]
    assert [e["type"] for e in later] == ["transcript.agent", "reply.done"]
    check_replies(ws.events)


def test_session_ended_is_the_last_event(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"greeting": LONG_GREETING})
        ws.expect("reply.started")
        ws.send({"type": "session.end"})
        events = ws.until("session.ended")
        assert ws.expect_close() == 1000
    # the greeting in progress stops at once: no transcript.agent or reply.done follows
    assert not [e for e in events if e["type"] in ("transcript.agent", "reply.done")]
    assert events[-1]["reason"] == "client_end"
