"""Every client event of §7 and server event of §8 through the real ``/v1/ws`` route.

The ``WsClient`` of ``conftest`` checks each received event's exact field set, its float
``timestamp`` and the ID formats of §1, so these tests focus on the values.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
import pytest

from tests.harness import pcm16_b64, silence, tone
from tests.integration.conftest import Event, MakeServer, WsClient, WsServer, assert_id
from vocalis.audio import alaw_encode, float_to_int16, ulaw_encode

DEFAULT_PROMPT = "You are a helpful voice assistant. Keep answers short and conversational."
PCM_24K = {"encoding": "audio/pcm", "sample_rate": 24000}
LOOKUP_TOOL = {
    "name": "lookup_order",
    "description": "Look up an order by id.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "pattern": "ORD-[0-9]{5}"}},
        "required": ["order_id"],
    },
}
FAST_TURNS = {"turn_detection": {"type": "server_vad", "min_silence": 300}}


def default_config(session_id: str) -> dict[str, Any]:
    """§6.7 with nothing set by the client."""
    return {
        "id": session_id,
        "system_prompt": DEFAULT_PROMPT,
        "greeting": None,
        "input": {
            "type": "audio",
            "format": PCM_24K,
            "keyterms": None,
            "turn_detection": None,
            "transcription_mode": None,
            "transcription_prompt": None,
            "language_codes": None,
            "voice_focus": None,
            "voice_focus_threshold": None,
            "continuous_partials": None,
        },
        "output": {"type": "audio", "voice": "ivy", "format": PCM_24K, "volume": None},
        "tools": [],
        "llm": [],
        "pre_connect_requests": [],
    }


def of(events: list[Event], type_: str) -> list[Event]:
    return [e for e in events if e["type"] == type_]


def say(ws: WsClient, audio: np.ndarray) -> None:
    ws.send({"type": "input.audio", "audio": pcm16_b64(audio)})


def user_turn_audio(speech_ms: int = 500, silence_ms: int = 600) -> np.ndarray:
    return np.concatenate([tone(speech_ms), silence(silence_ms)])


# ---------------------------------------------------------------------------- session.update
@pytest.mark.parametrize("path", ["/v1/ws", "/v1/realtime"])
def test_first_update_gets_updated_then_ready_with_default_config(
    ws_server: WsServer, path: str
) -> None:
    with ws_server.connect(path) as ws:
        before = time.time()
        ws.send({"type": "session.update"})  # `session` absent = {}
        updated = ws.expect("session.updated")
        ready = ws.expect("session.ready")
        session_id = ready["session_id"]
        assert updated["config"] == ready["config"] == default_config(session_id)
        # expires_at = creation + the default cap of 10800 s, as integer Unix seconds
        assert int(before) + 10800 - 1 <= ready["expires_at"] <= int(time.time()) + 10800 + 1
        ws.assert_quiet(0.2)  # no greeting configured: the agent listens first


def test_config_echoes_client_values_and_fills_defaults(ws_server: WsServer) -> None:
    session = {
        "system_prompt": "Be brief.",
        "greeting": "",  # "" = no greeting
        "input": {
            "keyterms": ["Vocalis"],
            "transcription_mode": "min_latency",
            "transcription_prompt": "Orders and returns.",
            "language_codes": ["en", "fr"],
            "voice_focus": "far-field",
            "voice_focus_threshold": 0.5,
            "continuous_partials": True,
            "turn_detection": {"min_silence": 400},
        },
        "output": {"voice": "claire", "volume": 80},
        "tools": [{"type": "function", "name": "lookup_order"}],
        "pre_connect_requests": [{"timeout_ms": 500, "custom": {"kept": True}}],
        "webhook": {
            "url": "https://example.com/hook",
            "events": ["session.completed"],
            "secret": "s" * 32,
        },
        "tool_choice": "auto",  # unknown keys are ignored
    }
    with ws_server.connect() as ws:
        config = ws.start(session)["config"]
    assert config["system_prompt"] == "Be brief."
    assert config["greeting"] is None
    assert config["input"] == {
        "type": "audio",
        "format": PCM_24K,
        "keyterms": ["Vocalis"],
        "turn_detection": {
            "type": None,
            "vad_threshold": 0.5,
            "min_silence": 400,
            "max_silence": 1500,  # min_latency preset for what the client left unset
            "interrupt_response": True,
            "interruption_delay": 200,
            "uninterruptible_turns": [],
        },
        "transcription_mode": "min_latency",
        "transcription_prompt": "Orders and returns.",
        "language_codes": ["en", "fr"],
        "voice_focus": "far-field",
        "voice_focus_threshold": 0.5,
        "continuous_partials": True,
    }
    assert config["output"] == {"type": "audio", "voice": "claire", "format": PCM_24K, "volume": 80}
    assert config["tools"] == [
        {
            "type": "function",
            "name": "lookup_order",
            "description": "",
            "parameters": {"type": "object", "properties": {}, "required": []},
            "timeout_seconds": 120,
            "execution_mode": "interactive",
            "http": None,
            "response_instructions": None,
            "deployment_id": None,
            "session_update": None,
            "image_tag": None,
        }
    ]
    assert config["pre_connect_requests"] == [{"timeout_ms": 500, "custom": {"kept": True}}]
    assert config["webhook"] == {"url": "https://example.com/hook", "events": ["session.completed"]}
    assert "s" * 32 not in json.dumps(config)  # secrets never echo


def test_later_updates_merge_objects_and_replace_arrays(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start(
            {
                "input": {"keyterms": ["a", "b"], "turn_detection": {"min_silence": 400}},
                "tools": [LOOKUP_TOOL],
            }
        )
        ws.send(
            {
                "type": "session.update",
                "session": {
                    "system_prompt": "New prompt.",
                    "input": {"keyterms": ["c"], "turn_detection": {"max_silence": 3000}},
                    "output": {"volume": 50},
                },
            }
        )
        config = ws.expect("session.updated")["config"]
        assert config["system_prompt"] == "New prompt."
        assert config["input"]["keyterms"] == ["c"]
        assert config["input"]["turn_detection"]["min_silence"] == 400
        assert config["input"]["turn_detection"]["max_silence"] == 3000
        assert config["output"]["volume"] == 50
        assert [t["name"] for t in config["tools"]] == ["lookup_order"]
        ws.send({"type": "session.update", "session": {"tools": []}})
        assert ws.expect("session.updated")["config"]["tools"] == []
        ws.assert_quiet(0.1)  # at most one session.ready per connection


# ------------------------------------------------------------------------------ replies
def test_greeting_reply_events(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"greeting": "Hi there!"})
        events = ws.until("reply.done")
    started = events[0]
    assert started["type"] == "reply.started"
    reply_id, item_id = started["reply_id"], started["item_id"]
    audio = of(events, "reply.audio")
    assert audio and all(e["reply_id"] == reply_id for e in audio)
    deltas = of(events, "transcript.agent.delta")
    assert [d["delta"] for d in deltas] == ["Hi ", "there!"]  # one delta per word
    assert all((d["reply_id"], d["item_id"]) == (reply_id, item_id) for d in deltas)
    assert deltas[0]["start_ms"] == 0
    assert all(d["start_ms"] <= d["end_ms"] for d in deltas)
    final = of(events, "transcript.agent")
    assert final == [events[-2]]
    assert final[0]["text"] == "Hi there!" == "".join(d["delta"] for d in deltas)
    assert (final[0]["reply_id"], final[0]["item_id"], final[0]["interrupted"]) == (
        reply_id,
        item_id,
        False,
    )
    assert events[-1]["reply_id"] == reply_id
    assert events[-1]["status"] == "completed"


def test_conversation_message_and_reply_create(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        ws.send({"type": "conversation.message", "role": "user", "content": "hi"})
        ws.assert_quiet(0.1)  # appends to the history, starts no reply
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        assert of(events, "transcript.agent")[0]["text"] == "You said: hi"
        # a system message is accepted too (the fake LLM speaks a trailing system message)
        ws.send({"type": "conversation.message", "role": "system", "content": "Note this."})
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        assert of(events, "transcript.agent")[0]["text"] == "Note this."
        # a one-shot instruction
        assert of(ws.reply("Sure."), "transcript.agent")[0]["text"] == "Sure."


def test_escaped_non_ascii_text_round_trips(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        # a surrogate pair escape is one valid character; raw UTF-8 works as well
        content = '"\\ud83d\\ude00 \\u00e9t\u00e9"'
        ws.send('{"type": "conversation.message", "role": "user", "content": ' + content + "}")
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
    assert of(events, "transcript.agent")[0]["text"] == "You said: \U0001f600 \u00e9t\u00e9"


def test_null_optional_fields_mean_absent_and_unknown_keys_are_ignored(
    ws_server: WsServer,
) -> None:
    with ws_server.connect() as ws:
        ws.send({"type": "session.update", "session": None, "event_id": "e1"})
        ws.expect("session.updated")
        ready = ws.expect("session.ready")
        assert ready["config"]["greeting"] is None
        ws.send({"type": "session.update", "session": {"greeting": None, "input": None}})
        ws.expect("session.updated")
        ws.send({"type": "reply.create", "instructions": None, "extra": {"x": 1}})
        events = ws.until("reply.done")
        assert of(events, "transcript.agent")[0]["text"] == "How can I help?"
        ws.send({"type": "reply.cancel", "reply_id": None})  # nothing in progress
        ws.send({"type": "session.end", "reason": "ignored"})
        assert ws.expect("session.ended")["reason"] == "client_end"


def test_duration_cap_ends_the_session(make_ws_server: MakeServer) -> None:
    server = make_ws_server(default_max_session_duration_seconds=1)
    with server.connect() as ws:
        before = time.time()
        ready = ws.start()
        assert int(before) <= ready["expires_at"] <= int(time.time()) + 1
        ended = ws.until("session.ended", timeout=5)[-1]
        assert ended["reason"] == "max_duration"
        assert ws.expect_close() == 1000


def test_idle_timeout_ends_the_session(make_ws_server: MakeServer) -> None:
    server = make_ws_server(idle_timeout_seconds=0.5)
    with server.connect() as ws:
        ws.start()
        say(ws, silence(200))  # streamed silence does not count as activity
        ended = ws.until("session.ended", timeout=5)[-1]
        assert ended["reason"] == "idle_timeout"
        assert ended["audio_duration_seconds"] == pytest.approx(0.2, abs=0.01)
        assert ws.expect_close() == 1000


def test_empty_model_output_still_starts_and_finishes_a_reply(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        ws.send({"type": "conversation.message", "role": "user", "content": "say nothing"})
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
    assert [e["type"] for e in events] == ["reply.started", "transcript.agent", "reply.done"]
    assert events[1]["text"] == "" and events[1]["interrupted"] is False
    assert events[2]["status"] == "completed"


def test_reply_error_then_the_reply_ends_normally(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        ws.send({"type": "conversation.message", "role": "user", "content": "fail 503"})
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        assert [e["type"] for e in events] == [
            "reply.started",
            "reply.error",
            "transcript.agent",
            "reply.done",
        ]
        reply_id = events[0]["reply_id"]
        error = events[1]
        assert error["reply_id"] == reply_id
        assert error["code"] == "llm_error"
        assert error["message"] == "LLM request failed: HTTP 503"
        assert error["retryable"] is True
        assert error["status_code"] == 503
        assert events[2]["text"] == ""
        assert events[3]["status"] == "completed"
        ws.assert_alive()


def test_reply_cancel_interrupts_the_reply_in_progress(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"greeting": "This greeting is long enough to be cancelled midway."})
        reply_id = ws.expect("reply.started")["reply_id"]
        ws.send({"type": "reply.cancel", "reply_id": reply_id})
        events = ws.until("reply.done", skip_audio=True)
        final = of(events, "transcript.agent")[0]
        assert final["interrupted"] is True
        assert (final["reply_id"], events[-1]["reply_id"]) == (reply_id, reply_id)
        assert events[-1]["status"] == "interrupted"
        assert events[-2] is final
        played = "".join(d["delta"] for d in of(events, "transcript.agent.delta"))
        full = "This greeting is long enough to be cancelled midway."
        assert full.startswith(final["text"]) and len(final["text"]) < len(full)
        assert played.startswith(final["text"])
        # a finished reply: ignored silently
        ws.send({"type": "reply.cancel", "reply_id": reply_id})
        ws.assert_quiet(0.2)
        ws.assert_alive()


def test_reply_cancel_without_reply_id_cancels_the_current_reply(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"greeting": "Another greeting long enough to be cancelled."})
        ws.expect("reply.started")
        ws.send({"type": "reply.cancel"})
        events = ws.until("reply.done", skip_audio=True)
        assert events[-1]["status"] == "interrupted"
        ws.send({"type": "reply.cancel"})  # nothing in progress: no-op
        ws.assert_quiet(0.2)


# ------------------------------------------------------------------------------- tools
def test_tool_call_result_and_follow_up(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"tools": [LOOKUP_TOOL]})
        args = {"order_id": "ORD-48152"}
        content = f"call lookup_order {json.dumps(args)}"
        ws.send({"type": "conversation.message", "role": "user", "content": content})
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        assert [e["type"] for e in events] == [
            "reply.started",
            "tool.call",
            "transcript.agent",
            "reply.done",
        ]
        reply_id = events[0]["reply_id"]
        call = events[1]
        assert call["name"] == "lookup_order"
        assert call["arguments"] == args and call["args"] == args
        assert call["reply_id"] == reply_id
        assert events[2]["text"] == "" and events[3]["status"] == "completed"
        # an object result is accepted and JSON-encoded; the follow-up needs no reply.create
        ws.send(
            {
                "type": "tool.result",
                "call_id": call["call_id"],
                "result": {"a": 1},
                "is_error": False,
            }
        )
        follow_up = ws.until("reply.done")
        assert follow_up[0]["type"] == "reply.started"
        assert follow_up[0]["reply_id"] != reply_id
        text = of(follow_up, "transcript.agent")[0]["text"]
        assert text == 'Tool result: {"a":1}.'
        # a second result for the same call is ignored silently
        ws.send({"type": "tool.result", "call_id": call["call_id"], "result": "again"})
        ws.assert_quiet(0.2)


# ------------------------------------------------------------------------------- input
def test_user_turn_events(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"input": FAST_TURNS})
        say(ws, user_turn_audio())
        events = ws.until("reply.done", skip_audio=True)
    types = [e["type"] for e in events]
    assert types[0] == "input.speech.started"
    stopped = types.index("input.speech.stopped")
    assert set(types[1:stopped]) == {"transcript.user.delta"}
    assert types[stopped + 1] == "transcript.user"
    final = events[stopped + 1]
    deltas = of(events, "transcript.user.delta")
    assert all(d["item_id"] == final["item_id"] for d in deltas)
    assert final["text"].startswith("speech ") and final["text"].endswith(" ms.")
    assert of(events, "transcript.agent")[0]["text"] == f"You said: {final['text']}"


def test_session_end_reports_the_session_and_closes_1000(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        ws.send({"type": "session.end"})
        ended = ws.expect("session.ended")
        assert ended["reason"] == "client_end"
        assert ended["audio_duration_seconds"] is None  # no audio was sent
        assert 0 <= ended["session_duration_seconds"] < 60
        assert ws.expect_close() == 1000


def test_session_ended_counts_accepted_input_audio(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        say(ws, silence(1000))
        ws.send({"type": "input.audio", "audio": ""})  # "" is a no-op
        ws.send({"type": "session.end"})
        ended = ws.expect("session.ended")
        assert ended["audio_duration_seconds"] == pytest.approx(1.0, abs=0.01)
        assert ws.expect_close() == 1000


# ------------------------------------------------------------------------------ codecs
def _decoded_chunks(events: list[Event]) -> list[bytes]:
    return [base64.b64decode(e["data"]) for e in of(events, "reply.audio")]


@pytest.mark.parametrize(
    ("encoding", "chunk_bytes"),
    [("audio/pcm", 960), ("audio/pcmu", 160), ("audio/pcma", 160)],
)
def test_output_chunks_are_20_ms_of_the_output_encoding(
    ws_server: WsServer, encoding: str, chunk_bytes: int
) -> None:
    with ws_server.connect() as ws:
        config = ws.start({"output": {"format": {"encoding": encoding}}})["config"]
        rate = 24000 if encoding == "audio/pcm" else 8000
        assert config["output"]["format"] == {"encoding": encoding, "sample_rate": rate}
        chunks = _decoded_chunks(ws.reply("Hello."))  # 6 chars x 50 ms of fake speech
    assert len(chunks) >= 10
    assert all(len(c) == chunk_bytes for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_bytes
    total_ms = sum(len(c) for c in chunks) * 1000 / (rate * (2 if encoding == "audio/pcm" else 1))
    assert total_ms == pytest.approx(300, abs=20)


@pytest.mark.parametrize("encoding", ["audio/pcmu", "audio/pcma"])
def test_g711_input_is_decoded_for_turn_detection(ws_server: WsServer, encoding: str) -> None:
    encode = ulaw_encode if encoding == "audio/pcmu" else alaw_encode
    audio = encode(float_to_int16(np.concatenate([tone(500, rate=8000), silence(600, 8000)])))
    with ws_server.connect() as ws:
        session = {"input": {"format": {"encoding": encoding, "sample_rate": 8000}, **FAST_TURNS}}
        config = ws.start(session)["config"]
        assert config["input"]["format"] == {"encoding": encoding, "sample_rate": 8000}
        ws.send({"type": "input.audio", "audio": base64.b64encode(audio).decode()})
        events = ws.until("transcript.user")
        assert next(e["type"] for e in events) == "input.speech.started"
        assert events[-1]["text"].startswith("speech ")
        ws.send({"type": "session.end"})
        ended = ws.until("session.ended")[-1]
        assert ended["audio_duration_seconds"] == pytest.approx(1.1, abs=0.01)


def test_input_format_change_applies_to_later_audio(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start({"input": FAST_TURNS})
        update = {"input": {"format": {"encoding": "audio/pcmu"}}}
        ws.send({"type": "session.update", "session": update})
        config = ws.expect("session.updated")["config"]
        assert config["input"]["format"] == {"encoding": "audio/pcmu", "sample_rate": 8000}
        audio = ulaw_encode(
            float_to_int16(np.concatenate([tone(500, rate=8000), silence(600, 8000)]))
        )
        ws.send({"type": "input.audio", "audio": base64.b64encode(audio).decode()})
        assert ws.until("transcript.user")[-1]["text"].startswith("speech ")


def test_output_volume_zero_yields_silent_audio(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.start()
        loud = _decoded_chunks(ws.reply("Hi."))
        assert any(any(c) for c in loud)
        ws.send({"type": "session.update", "session": {"output": {"volume": 0}}})
        assert ws.expect("session.updated")["config"]["output"]["volume"] == 0
        quiet = _decoded_chunks(ws.reply("Hi."))
    assert quiet and not any(any(c) for c in quiet)


def test_ids_are_fresh_per_reply(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = ws.start()["session_id"]
        first = ws.reply("One.")[0]
        second = ws.reply("Two.")[0]
    assert_id(session_id, "sess")
    assert first["reply_id"] != second["reply_id"]
    assert first["item_id"] != second["item_id"]
