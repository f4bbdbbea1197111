"""Appendix A through the real socket: the legacy fallback and the legacy session keys."""

from __future__ import annotations

import base64

import pytest

from tests.harness import pcm16_b64, tone
from tests.integration.conftest import MakeServer, WsServer

LEGACY_AFTER = 0.3


@pytest.fixture
def legacy(make_ws_server: MakeServer) -> WsServer:
    return make_ws_server(legacy_ready_timeout_seconds=LEGACY_AFTER, api_keys=["key-one"])


def test_fallback_sends_session_ready_only(legacy: WsServer) -> None:
    # an older client: /v1/realtime, bare Authorization header, never sends session.update
    with legacy.connect("/v1/realtime", headers={"Authorization": "key-one"}) as ws:
        ready = ws.recv(timeout=5)
        assert ready["type"] == "session.ready"
        config = ready["config"]
        assert config["greeting"] is None
        assert config["output"]["voice"] == "ivy"
        assert config["tools"] == []
        pcm = {"encoding": "audio/pcm", "sample_rate": 24000}
        assert config["input"]["format"] == config["output"]["format"] == pcm
        ws.assert_quiet(0.2)  # no greeting
        ws.assert_alive()


def test_audio_before_the_fallback_is_dropped(legacy: WsServer) -> None:
    with legacy.connect(credential="key-one") as ws:
        ws.send({"type": "input.audio", "audio": pcm16_b64(tone(300))})
        ws.expect("session.ready")
        ws.send({"type": "session.end"})
        ended = ws.expect("session.ended")
        assert ended["audio_duration_seconds"] is None
        assert ws.expect_close() == 1000


def test_first_update_after_fallback_may_set_greeting_voice_and_format(legacy: WsServer) -> None:
    with legacy.connect(credential="key-one") as ws:
        session_id = ws.expect("session.ready")["session_id"]
        ws.send(
            {
                "type": "session.update",
                "session": {
                    "greeting": "Hello.",
                    "output": {"voice": "james", "format": {"encoding": "audio/pcmu"}},
                },
            }
        )
        config = ws.expect("session.updated")["config"]  # no second session.ready
        assert config["id"] == session_id
        assert config["greeting"] == "Hello."
        assert config["output"]["voice"] == "james"
        assert config["output"]["format"] == {"encoding": "audio/pcmu", "sample_rate": 8000}
        events = ws.until("reply.done")  # the greeting plays: no reply had started yet
        assert events[0]["type"] == "reply.started"
        assert not [e for e in events if e["type"] == "session.ready"]
        text = next(e for e in events if e["type"] == "transcript.agent")["text"]
        assert text == "Hello."
        chunks = [base64.b64decode(e["data"]) for e in events if e["type"] == "reply.audio"]
        assert all(len(c) == 160 for c in chunks[:-1])  # μ-law, 20 ms
        # the second update follows later-update rules again
        ws.send({"type": "session.update", "session": {"output": {"voice": "ivy"}}})
        ws.expect_error(
            "immutable_field",
            "'output.voice' cannot be changed after the first session.update",
            param="output.voice",
            session_id=session_id,
        )


def test_first_update_errors_after_fallback_are_non_fatal(legacy: WsServer) -> None:
    with legacy.connect(credential="key-one") as ws:
        session_id = ws.expect("session.ready")["session_id"]
        ws.send({"type": "session.update", "session": {"output": {"voice": "nobody"}}})
        error = ws.expect("session.error")
        assert (error["code"], error["param"], error["session_id"]) == (
            "invalid_value",
            "output.voice",
            session_id,
        )
        assert error["message"].startswith("Invalid voice 'nobody'. Must be one of: alba, ")
        # still the first update: the voice may be set now
        ws.send({"type": "session.update", "session": {"output": {"voice": "alba"}}})
        assert ws.expect("session.updated")["config"]["output"]["voice"] == "alba"
        ws.assert_alive()


def test_first_update_after_fallback_looks_up_agent_id(legacy: WsServer) -> None:
    with legacy.connect(credential="key-one") as ws:
        session_id = ws.expect("session.ready")["session_id"]
        ws.send({"type": "session.update", "session": {"agent_id": "agent_" + "0" * 32}})
        # no storage: every agent is unknown; the error is non-fatal after the fallback
        ws.expect_error(
            "agent_not_found", "Agent not found", param="agent_id", session_id=session_id
        )
        ws.assert_alive()


def test_session_update_before_the_fallback_prevents_it(legacy: WsServer) -> None:
    with legacy.connect(credential="key-one") as ws:
        ws.start()
        ws.assert_quiet(LEGACY_AFTER + 0.2)  # no second session.ready


def test_legacy_root_turn_detection_names_are_mapped(ws_server: WsServer) -> None:
    legacy_keys = {
        "speech_detection_threshold": 0.3,
        "min_end_of_turn_silence_ms": 400,
        "max_turn_silence_ms": 1200,
        "interrupt_response": False,
        "min_interrupt_duration_ms": 300,
        "prefix_padding_ms": 100,  # ignored
        "min_interrupt_words": 2,  # ignored
    }
    with ws_server.connect() as ws:
        config = ws.start({"turn_detection": legacy_keys, "tool_choice": "auto"})["config"]
    assert config["input"]["turn_detection"] == {
        "type": None,
        "vad_threshold": 0.3,
        "min_silence": 400,
        "max_silence": 1200,
        "interrupt_response": False,
        "interruption_delay": 300,
        "uninterruptible_turns": [],
    }


def test_explicit_input_turn_detection_wins_over_legacy_names(ws_server: WsServer) -> None:
    session = {
        "turn_detection": {"min_end_of_turn_silence_ms": 400, "max_turn_silence_ms": 1200},
        "input": {"turn_detection": {"min_silence": 600}},
    }
    with ws_server.connect() as ws:
        config = ws.start(session)["config"]
        td = config["input"]["turn_detection"]
        assert (td["min_silence"], td["max_silence"]) == (600, 1200)
        # later updates map the legacy names too, merged field by field
        ws.send(
            {"type": "session.update", "session": {"turn_detection": {"max_turn_silence_ms": 900}}}
        )
        td = ws.expect("session.updated")["config"]["input"]["turn_detection"]
        assert (td["min_silence"], td["max_silence"]) == (600, 900)
