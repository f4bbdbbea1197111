"""Session resume (§14) through the real socket: detach, resume, take-over and its refusals."""

from __future__ import annotations

import json
import time

import pytest

from tests.harness import pcm16_b64, silence, tone
from tests.integration.conftest import Event, MakeServer, WsServer

KEYS = ["key-one"]
NOT_FOUND = "Session not found or grace window has expired"
TOOL = {"name": "lookup_order", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture
def keyed(make_ws_server: MakeServer) -> WsServer:
    return make_ws_server(api_keys=KEYS)


def resume(session_id: str) -> dict[str, str]:
    return {"type": "session.resume", "session_id": session_id}


def detached_session(server: WsServer, greeting: str | None = "Hi.") -> Event:
    """A session whose greeting has played, then an unclean disconnect."""
    with server.connect(credential="key-one") as ws:
        ready = ws.start({"greeting": greeting} if greeting else {})
        if greeting:
            ws.until("reply.done")
        ws.disconnect()
    server.wait_session_state(ready["session_id"], "disconnected")
    return ready


@pytest.mark.parametrize("credential", ["resume_token", "key-one", "temporary"])
def test_resume_after_an_unclean_disconnect(keyed: WsServer, credential: str) -> None:
    ready = detached_session(keyed)
    detached_at = time.monotonic()
    if credential == "temporary":
        token = keyed.call(keyed.state.tokens.mint, 60, 600)[0]  # a fresh one also resumes
    else:
        token = ready["resume_token"] if credential == "resume_token" else credential
    time.sleep(0.2)
    with keyed.connect(credential=token) as ws:
        ws.send(resume(ready["session_id"]))
        again = ws.expect("session.ready")  # no session.updated before it
        assert again["session_id"] == ready["session_id"]
        assert again["expires_at"] == ready["expires_at"]
        assert again["resume_token"] == ready["resume_token"]
        assert again["config"] == ready["config"]
        ws.assert_quiet(0.3)  # no greeting again
        ws.assert_alive()
        ws.send({"type": "session.end"})
        ended = ws.until("session.ended")[-1]
        assert ended["reason"] == "client_end"
        # the detached time counts towards the session's duration
        assert ended["session_duration_seconds"] >= 0.2
        assert ws.expect_close() == 1000
    assert time.monotonic() - detached_at >= 0.2


def test_input_rate_clock_restarts_on_resume(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start()
        ws.send({"type": "input.audio", "audio": pcm16_b64(silence(1900))})  # 1.9 s ahead
        ws.disconnect()
    keyed.wait_session_state(ready["session_id"], "disconnected")
    with keyed.connect(credential=ready["resume_token"]) as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect("session.ready")
        ws.send({"type": "input.audio", "audio": pcm16_b64(silence(1900))})
        ws.send({"type": "session.end"})
        ended = ws.expect("session.ended")  # no audio_rate_violation before it
        assert ended["audio_duration_seconds"] == pytest.approx(3.8, abs=0.01)


def test_resume_keeps_configuration_and_history(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start({"system_prompt": "Remember."})
        ws.send({"type": "session.update", "session": {"output": {"volume": 30}}})
        ws.expect("session.updated")
        ws.send({"type": "conversation.message", "role": "user", "content": "4412"})
        ws.disconnect()
    keyed.wait_session_state(ready["session_id"], "disconnected")
    with keyed.connect(credential=ready["resume_token"]) as ws:
        # a resume_token inside session.resume is accepted and ignored (App. A)
        ws.send({**resume(ready["session_id"]), "resume_token": "ignored"})
        config = ws.expect("session.ready")["config"]
        assert config["system_prompt"] == "Remember."
        assert config["output"]["volume"] == 30
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        text = next(e for e in events if e["type"] == "transcript.agent")["text"]
        assert text == "You said: 4412"


def test_pending_tool_call_survives_a_disconnect(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start({"tools": [TOOL]})
        ws.send({"type": "conversation.message", "role": "user", "content": "call lookup_order"})
        ws.send({"type": "reply.create"})
        call = next(e for e in ws.until("reply.done") if e["type"] == "tool.call")
        ws.disconnect()
    keyed.wait_session_state(ready["session_id"], "disconnected")
    with keyed.connect(credential=ready["resume_token"]) as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect("session.ready")
        result = json.dumps("ok")
        ws.send({"type": "tool.result", "call_id": call["call_id"], "result": result})
        events = ws.until("reply.done")
        assert events[0]["type"] == "reply.started"
        text = next(e for e in events if e["type"] == "transcript.agent")["text"]
        assert text == f"Tool result: {result}."


def test_reply_in_progress_at_a_disconnect_is_not_replayed(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start({"greeting": "A greeting that is still playing when the line drops."})
        ws.expect("reply.started")
        ws.disconnect()
    keyed.wait_session_state(ready["session_id"], "disconnected")
    with keyed.connect(credential=ready["resume_token"]) as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect("session.ready")
        ws.assert_quiet(0.3)  # neither its transcript.agent nor its reply.done, nor a replay
        ws.assert_alive()


def test_open_user_turn_at_a_disconnect_is_answered_after_the_resume(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start()
        ws.send({"type": "input.audio", "audio": pcm16_b64(tone(500))})
        ws.expect("input.speech.started")
        ws.disconnect()
    keyed.wait_session_state(ready["session_id"], "disconnected")
    time.sleep(0.2)  # the queued reply waits for the resume
    with keyed.connect(credential=ready["resume_token"]) as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect("session.ready")
        events = ws.until("reply.done")
    assert events[0]["type"] == "reply.started"
    text = next(e for e in events if e["type"] == "transcript.agent")["text"]
    assert text.startswith("You said: speech ")


def test_resume_takes_over_a_still_attached_session(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as old:
        ready = old.start()
        with keyed.connect(credential=ready["resume_token"]) as new:
            new.send(resume(ready["session_id"]))
            again = new.expect("session.ready")
            assert again["session_id"] == ready["session_id"]
            assert old.expect_close() == 1001  # no further events on the old socket
            assert old.events[-1]["type"] == "session.ready"
            new.assert_alive()


def test_resume_of_an_unknown_session(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ws.send(resume("sess_" + "f" * 32))
        ws.expect_error("session_not_found", NOT_FOUND, param="session_id", session_id=None)
        assert ws.expect_close() == 1008


def test_resume_of_an_ended_session_with_its_own_token(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start()
        ws.send({"type": "session.end"})
        ws.until("session.ended")
    keyed.wait_session_state(ready["session_id"], None)
    # the token is still recognised, so this is session_not_found rather than unauthorized
    with keyed.connect(credential=ready["resume_token"]) as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect_error("session_not_found", NOT_FOUND, param="session_id")
        assert ws.expect_close() == 1008


def test_resume_after_the_grace_window(make_ws_server: MakeServer) -> None:
    server = make_ws_server(resume_grace_seconds=0.2)
    with server.connect() as ws:
        ready = ws.start()
        ws.disconnect()
    server.wait_session_state(ready["session_id"], None)
    with server.connect() as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect_error("session_not_found", NOT_FOUND, param="session_id")
        assert ws.expect_close() == 1008


def test_resume_disabled_by_zero_grace(make_ws_server: MakeServer) -> None:
    server = make_ws_server(resume_grace_seconds=0)
    with server.connect() as ws:
        ready = ws.start()
        ws.disconnect()
    time.sleep(0.1)
    with server.connect() as ws:
        ws.send(resume(ready["session_id"]))
        ws.expect_error("session_not_found", NOT_FOUND, param="session_id")
        assert ws.expect_close() == 1008


def test_resume_with_another_sessions_token_is_forbidden(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as a, keyed.connect(credential="key-one") as b:
        token_a = a.start()["resume_token"]
        session_b = b.start()["session_id"]
        with keyed.connect(credential=token_a) as ws:
            ws.send(resume(session_b))
            ws.expect_error(
                "session_forbidden",
                "Credential is not allowed to resume this session",
                param="session_id",
                session_id=None,
            )
            assert ws.expect_close() == 1008
        b.assert_alive()  # the target session is untouched


def test_session_end_is_never_resumable_even_by_api_key(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        ready = ws.start()
        ws.send({"type": "session.end"})
        ws.until("session.ended")
        assert ws.expect_close() == 1000
    with keyed.connect(credential="key-one") as ws:
        ws.send(resume(ready["session_id"]))
        assert ws.expect("session.error")["code"] == "session_not_found"
        assert ws.expect_close() == 1008
