"""The ``session.error`` rows of §16.1 through the real socket: code, exact message, ``param``,
``session_id`` (``null`` before a session, the id after) and the close code."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from tests.harness import pcm16_b64, silence, tone
from tests.integration.conftest import MakeServer, WsClient, WsServer

# §18.1, every generation of the hosted catalog
CATALOG_ROWS = (
    "ivy james tyler winter bella david kyle helen martha river emma victor eleanor",
    "alba eve george jane jean mary michael iris reid anna charles paul vera",
    "josh dylan dawn summer andy zoe alexis pete brian diana grace kai claire nathan audrey",
    "melissa will pierre estelle giulia luca giovanni lucia mateo lola diego rafael juergen",
    "arjun dmitri",
    # withdrawn in June 2026, still accepted
    "sam mia jack sophie oliver ethan mei lukas lena mina joon ren hana",
)
CATALOG = [voice for row in CATALOG_ROWS for voice in row.split()]
BAD_VOICE_MESSAGE = "Invalid voice 'nobody'. Must be one of: " + ", ".join(sorted(CATALOG))
HTTP_TOOL_MESSAGE = (
    "HTTP tools are only supported on stored agents; define them via POST /v1/agents"
)
LLM_MESSAGE = (
    "BYO LLM config is not allowed on session.update; "
    "define it on a stored agent via POST /v1/agents"
)
HTTP_TOOL = {"name": "remote", "http": {"url": "https://example.com/tool"}}
UNKNOWN_AGENT = "agent_" + "0" * 32

# (session object, message, param) of invalid values, reported the same on any update
VALUE_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    (
        {"output": {"volume": 150}},
        "'output.volume' must be between 0 and 100",
        "output.volume",
    ),
    (
        {"input": {"transcription_mode": "fast"}},
        "'input.transcription_mode' must be one of: min_latency, balanced, max_accuracy",
        "input.transcription_mode",
    ),
    (
        {"tools": [{"name": "t", "parameters": {"type": "object", "properties": []}}]},
        "'tools[0].parameters.properties' must be an object",
        "tools[0].parameters.properties",
    ),
    (
        {"tools": [{"name": "same"}, {"name": "same"}]},
        "'tools[1].name' must be unique",
        "tools[1].name",
    ),
    (
        {"input": {"turn_detection": {"min_silence": 2000, "max_silence": 1000}}},
        "'input.turn_detection.min_silence' must be less than or equal to max_silence",
        "input.turn_detection.min_silence",
    ),
    ({"tools": [HTTP_TOOL]}, HTTP_TOOL_MESSAGE, "tools[0].http"),
    ({"input": {"type": "video"}}, "'input.type' must be one of: audio, text", "input.type"),
]
VALUE_ERROR_IDS = ["volume", "mode", "properties", "unique", "silence", "http_tool", "input_type"]

# (session object, code, message, param) fatal on a first update only
FIRST_UPDATE_ERRORS: list[tuple[dict[str, Any], str, str, str]] = [
    ({"output": {"voice": "nobody"}}, "invalid_value", BAD_VOICE_MESSAGE, "output.voice"),
    (
        {"agent_id": UNKNOWN_AGENT, "system_prompt": "x"},
        "invalid_value",
        "agent_id is mutually exclusive with other session fields",
        "agent_id",
    ),
    ({"agent_id": UNKNOWN_AGENT}, "agent_not_found", "Agent not found", "agent_id"),
    (
        {"llm": [{"base_url": "http://localhost:1/v1", "model": "m"}]},
        "invalid_value",
        LLM_MESSAGE,
        "llm",
    ),
    (
        {"webhook": {"url": "ftp://example.com"}},
        "invalid_webhook",
        "'webhook.url' must be an http or https URL of at most 2048 characters",
        "webhook.url",
    ),
    *[(s, "invalid_value", m, p) for s, m, p in VALUE_ERRORS],
]
FIRST_UPDATE_IDS = ["voice", "agent_exclusive", "agent_not_found", "llm", "webhook"]
FIRST_UPDATE_IDS += VALUE_ERROR_IDS


def update(session: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.update", "session": session}


def started(ws: WsClient, session: dict[str, Any] | None = None) -> str:
    return str(ws.start(session)["session_id"])


# ----------------------------------------------------------------------- first update: fatal
@pytest.mark.parametrize(
    ("session", "code", "message", "param"), FIRST_UPDATE_ERRORS, ids=FIRST_UPDATE_IDS
)
def test_first_update_errors_are_fatal(
    ws_server: WsServer, session: dict[str, Any], code: str, message: str, param: str
) -> None:
    with ws_server.connect() as ws:
        ws.send(update(session))
        ws.expect_error(code, message, param=param, session_id=None)
        assert ws.expect_close() == 1008


def test_first_update_error_order_reports_agent_exclusivity_first(ws_server: WsServer) -> None:
    # message shape -> agent_id exclusivity -> agent lookup -> inline llm -> webhook -> values
    with ws_server.connect() as ws:
        ws.send(update({"agent_id": UNKNOWN_AGENT, "llm": [{}], "output": {"volume": 500}}))
        ws.expect_error(
            "invalid_value",
            "agent_id is mutually exclusive with other session fields",
            param="agent_id",
        )
        assert ws.expect_close() == 1008


def test_first_update_error_order_llm_before_webhook_before_values(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.send(update({"output": {"volume": 500}, "webhook": {"url": "x"}, "llm": [{}]}))
        ws.expect_error("invalid_value", LLM_MESSAGE, param="llm")
        assert ws.expect_close() == 1008
    with ws_server.connect() as ws:
        ws.send(update({"output": {"volume": 500}, "webhook": {"url": "x"}}))
        assert ws.expect("session.error")["code"] == "invalid_webhook"
        assert ws.expect_close() == 1008


@pytest.mark.parametrize(
    ("webhook", "param"),
    [
        ({"url": "https://example.com/h", "events": ["session.paused"]}, "webhook.events"),
        ({"url": "https://example.com/h", "secret": "short"}, "webhook.secret"),
    ],
)
def test_invalid_webhook_fields(ws_server: WsServer, webhook: dict[str, Any], param: str) -> None:
    with ws_server.connect() as ws:
        ws.send(update({"webhook": webhook}))
        error = ws.expect("session.error")
        assert (error["code"], error["param"], error["session_id"]) == (
            "invalid_webhook",
            param,
            None,
        )
        assert error["message"].startswith(f"'{param}' must be ")
        assert ws.expect_close() == 1008


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ({"input": {"format": {"encoding": "audio/pcmu", "sample_rate": 16000}}}, "input"),
        ({"output": {"format": {"encoding": "audio/pcm", "sample_rate": 8000}}}, "output"),
    ],
)
def test_sample_rate_must_match_the_encoding(
    ws_server: WsServer, fmt: dict[str, Any], param: str
) -> None:
    with ws_server.connect() as ws:
        ws.send(update(fmt))
        error = ws.expect("session.error")
        assert error["code"] == "invalid_value"
        assert error["param"] == f"{param}.format.sample_rate"
        assert error["message"].startswith(f"'{param}.format.sample_rate' must be ")
        assert ws.expect_close() == 1008


def test_unknown_encoding_is_an_invalid_value(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.send(update({"output": {"format": {"encoding": "audio/opus"}}}))
        error = ws.expect("session.error")
        assert (error["code"], error["param"]) == ("invalid_value", "output.format.encoding")
        assert ws.expect_close() == 1008


# ----------------------------------------------------------------------- later update: open
@pytest.mark.parametrize(("session", "message", "param"), VALUE_ERRORS, ids=VALUE_ERROR_IDS)
def test_later_update_errors_leave_the_session_unchanged_and_open(
    ws_server: WsServer, session: dict[str, Any], message: str, param: str
) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws, {"system_prompt": "Old."})
        # the whole update is rejected: its valid system_prompt is not applied either
        ws.send(update({"system_prompt": "New.", **session}))
        ws.expect_error("invalid_value", message, param=param, session_id=session_id)
        ws.send(update({"output": {"volume": 40}}))
        config = ws.expect("session.updated")["config"]
        assert config["system_prompt"] == "Old."
        assert config["output"]["volume"] == 40
        ws.assert_alive()


def test_later_update_webhook_error_is_non_fatal(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send(update({"webhook": {"url": "not a url"}}))
        ws.expect_error(
            "invalid_webhook",
            "'webhook.url' must be an http or https URL of at most 2048 characters",
            param="webhook.url",
            session_id=session_id,
        )
        ws.send(update({"webhook": {"url": "https://example.com/h", "events": []}}))
        assert ws.expect("session.updated")["config"]["webhook"] == {
            "url": "https://example.com/h",
            "events": [],
        }


def test_agent_id_in_a_later_update(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send(update({"agent_id": UNKNOWN_AGENT}))
        ws.expect_error(
            "agent_id_not_first",
            "agent_id can only be set on the first session.update",
            param="agent_id",
            session_id=session_id,
        )
        ws.assert_alive()


@pytest.mark.parametrize(
    ("first", "same", "changed", "field"),
    [
        ({"greeting": "Hi."}, {"greeting": "Hi."}, {"greeting": "Hello."}, "greeting"),
        ({}, {"greeting": ""}, {"greeting": "Hello."}, "greeting"),
        ({}, {"output": {"voice": "ivy"}}, {"output": {"voice": "james"}}, "output.voice"),
        (
            {"output": {"voice": "james"}},
            {"output": {"voice": "james"}},
            {"output": {"voice": "nobody"}},  # invalid or not: immutable
            "output.voice",
        ),
        (
            {},
            {"output": {"format": {"encoding": "audio/pcm", "sample_rate": 24000}}},
            {"output": {"format": {"encoding": "audio/pcmu"}}},
            "output.format",
        ),
        (
            {"output": {"format": {"encoding": "audio/pcma"}}},
            {"output": {"format": {"encoding": "audio/pcma"}}},
            {"output": {"format": {"encoding": "audio/pcm"}}},
            "output.format",
        ),
    ],
    ids=["greeting", "no_greeting", "voice", "invalid_voice", "format", "format_g711"],
)
def test_immutable_fields(
    ws_server: WsServer,
    first: dict[str, Any],
    same: dict[str, Any],
    changed: dict[str, Any],
    field: str,
) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws, first)
        if first.get("greeting"):
            ws.until("reply.done")
        ws.send(update(same))  # the current value is accepted as no change
        ws.expect("session.updated")
        ws.send(update(changed))
        ws.expect_error(
            "immutable_field",
            f"'{field}' cannot be changed after the first session.update",
            param=field,
            session_id=session_id,
        )
        ws.send(update({"system_prompt": "Still here."}))
        assert ws.expect("session.updated")["config"]["system_prompt"] == "Still here."


# ----------------------------------------------------------------------------- framing
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "Invalid JSON format."),
        ("not json", "Invalid JSON format."),
        ("", "Invalid JSON format."),
        ("[1, 2]", "Invalid message format"),
        ("42", "Invalid message format"),
        ('"session.update"', "Invalid message format"),
        ("null", "Invalid message format"),
        ("{}", "Invalid message format"),
        ('{"type": 5}', "Invalid message format"),
        ('{"type": null}', "Invalid message format"),
        ('{"type": "session.pause"}', "Unknown message type: session.pause"),
        ('{"type": ""}', "Unknown message type: "),
    ],
)
def test_format_errors_before_and_after_the_session(
    ws_server: WsServer, text: str, message: str
) -> None:
    with ws_server.connect() as ws:
        ws.send(text)
        ws.expect_error("invalid_format", message, session_id=None)
        session_id = started(ws)
        ws.send(text)
        ws.expect_error("invalid_format", message, session_id=session_id)
        ws.assert_alive()


WRONG_FIELDS: list[dict[str, Any]] = [
    {"type": "session.update", "session": "x"},
    {"type": "session.update", "session": {"input": "x"}},
    {"type": "session.update", "session": {"output": {"volume": "loud"}}},
    {"type": "session.update", "session": {"tools": "x"}},
    {"type": "session.update", "session": {"system_prompt": 5}},
    {"type": "input.audio"},
    {"type": "input.audio", "audio": 5},
    {"type": "tool.result", "result": "x"},
    {"type": "tool.result", "call_id": "call_x"},
    {"type": "tool.result", "call_id": 5, "result": "x"},
    {"type": "tool.result", "call_id": "call_x", "result": "x", "is_error": "yes"},
    {"type": "reply.create", "instructions": 5},
    {"type": "conversation.message", "role": "assistant", "content": "x"},
    {"type": "conversation.message", "role": "user", "content": 5},
    {"type": "conversation.message", "content": "x"},
    {"type": "conversation.message", "role": "user"},
    {"type": "reply.cancel", "reply_id": 5},
]


@pytest.mark.parametrize("message", WRONG_FIELDS, ids=lambda m: json.dumps(m))
def test_wrong_field_types_after_the_session(ws_server: WsServer, message: dict[str, Any]) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send(message)
        ws.expect_error(
            "invalid_format",
            f"Invalid message format for type '{message['type']}'",
            session_id=session_id,
        )
        ws.assert_alive()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "session.update", "session": "x"},
        {"type": "session.update", "session": {"output": {"voice": 5}}},
        {"type": "session.resume"},
        {"type": "session.resume", "session_id": 5},
    ],
    ids=lambda m: json.dumps(m),
)
def test_wrong_field_types_of_a_first_message_are_non_fatal(
    ws_server: WsServer, message: dict[str, Any]
) -> None:
    with ws_server.connect() as ws:
        ws.send(message)
        ws.expect_error("invalid_format", f"Invalid message format for type '{message['type']}'")
        started(ws)  # no session was created; the server still waits for a first message


@pytest.mark.parametrize(
    "message",
    [
        {"type": "reply.create"},
        {"type": "conversation.message", "role": "user", "content": "x"},
        {"type": "tool.result", "call_id": "call_x", "result": "x"},
        {"type": "reply.cancel"},
        {"type": "session.end"},
    ],
    ids=lambda m: str(m["type"]),
)
def test_other_messages_are_not_allowed_before_ready(
    ws_server: WsServer, message: dict[str, Any]
) -> None:
    with ws_server.connect() as ws:
        ws.send(message)
        ws.expect_error(
            "invalid_format",
            f"Message type '{message['type']}' is not allowed before session.ready; "
            "send session.update or session.resume first",
        )
        started(ws)


def test_audio_before_ready_is_dropped_silently(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.send({"type": "input.audio", "audio": pcm16_b64(tone(500))})
        ws.send({"type": "session.update"})
        ws.expect("session.updated")  # no error came first
        ws.expect("session.ready")
        ws.send({"type": "session.end"})
        assert ws.expect("session.ended")["audio_duration_seconds"] is None


def test_first_message_timeout_closes_1008(make_ws_server: MakeServer) -> None:
    server = make_ws_server(first_message_timeout_seconds=0.3, legacy_ready_timeout_seconds=0)
    with server.connect() as ws:
        ws.expect_error(
            "invalid_format", "Timed out waiting for session.update or session.resume", timeout=5
        )
        assert ws.expect_close() == 1008


def test_first_message_timeout_counts_from_connect_despite_bad_messages(
    make_ws_server: MakeServer,
) -> None:
    server = make_ws_server(first_message_timeout_seconds=1.0, legacy_ready_timeout_seconds=0)
    with server.connect() as ws:
        ws.send({"type": "reply.create"})
        assert ws.expect("session.error")["code"] == "invalid_format"
        ws.send({"type": "session.update", "session": "x"})
        assert ws.expect("session.error")["code"] == "invalid_format"
        ws.expect_error("invalid_format", "Timed out waiting for session.update or session.resume")
        assert ws.expect_close() == 1008


def test_no_timeout_once_the_session_exists(make_ws_server: MakeServer) -> None:
    server = make_ws_server(first_message_timeout_seconds=0.4, legacy_ready_timeout_seconds=0)
    with server.connect() as ws:
        started(ws)
        ws.assert_quiet(0.6)
        ws.assert_alive()


def test_session_resume_is_only_allowed_first(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send({"type": "session.resume", "session_id": session_id})
        ws.expect_error(
            "invalid_format",
            "session.resume is only allowed as the first message",
            session_id=session_id,
        )
        ws.assert_alive()


def test_binary_frames_are_rejected_and_the_socket_stays_open(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        ws.send_bytes(b'{"type":"session.update"}')
        ws.expect_error("invalid_format", "Binary frames are not supported")
        session_id = started(ws)
        ws.send_bytes(b"\x00\x01")
        ws.expect_error("invalid_format", "Binary frames are not supported", session_id=session_id)
        ws.assert_alive()


def test_text_frames_over_1_mib_are_discarded(ws_server: WsServer) -> None:
    big = json.dumps({"type": "conversation.message", "role": "user", "content": "x" * 1_100_000})
    with ws_server.connect() as ws:
        ws.send(big)
        ws.expect_error("invalid_format", "Message too large")
        session_id = started(ws)
        ws.send(big)
        ws.expect_error("invalid_format", "Message too large", session_id=session_id)
        # exactly 1 MiB is processed: its over-long content is a value error
        frame = '{"type":"conversation.message","role":"user","content":"%s"}'
        exact = frame % ("y" * (2**20 - len(frame) + 2))
        assert len(exact.encode()) == 2**20
        ws.send(exact)
        error = ws.expect("session.error")
        assert (error["code"], error["param"]) == ("invalid_value", "content")
        assert error["message"].startswith("'content' must be ")
        ws.assert_alive()


def test_a_1_mib_frame_of_multibyte_text_counts_bytes(ws_server: WsServer) -> None:
    # 600 000 characters, 1.2 MB of UTF-8: over the 1 MiB limit
    frame = json.dumps({"type": "x", "pad": "é" * 600_000}, ensure_ascii=False)
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send(frame)
        ws.expect_error("invalid_format", "Message too large", session_id=session_id)


# ------------------------------------------------------------------------------ audio
@pytest.mark.parametrize("audio", ["!!!!", "abc", "YW Jj", "\u00e9\u00e9\u00e9\u00e9"])
def test_invalid_base64_audio(ws_server: WsServer, audio: str) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send({"type": "input.audio", "audio": audio})
        ws.expect_error("invalid_audio", "Invalid audio data", session_id=session_id)
        ws.assert_alive()


def test_audio_faster_than_real_time_is_cut_at_2_s_ahead(ws_server: WsServer) -> None:
    five_seconds = pcm16_b64(np.concatenate([silence(5000)]))
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send({"type": "input.audio", "audio": five_seconds})
        ws.expect_error(
            "audio_rate_violation",
            "Audio sent faster than real time; excess audio was dropped",
            session_id=session_id,
        )
        ws.assert_alive()
        ws.send({"type": "session.end"})
        accepted = ws.until("session.ended")[-1]["audio_duration_seconds"]
    assert 1.5 < accepted <= 2.0 + 1e-6  # only what fits 2 s ahead of real time


# ------------------------------------------------------------------------- invalid values
def test_unknown_call_id(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send({"type": "tool.result", "call_id": "call_zzz", "result": "{}"})
        ws.expect_error(
            "invalid_value", "Unknown call_id 'call_zzz'", param="call_id", session_id=session_id
        )
        ws.assert_alive()


def test_unknown_reply_id(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send({"type": "reply.cancel", "reply_id": "resp_zzz"})
        ws.expect_error(
            "invalid_value",
            "Unknown reply_id 'resp_zzz'",
            param="reply_id",
            session_id=session_id,
        )
        ws.assert_alive()


def test_more_than_8_queued_reply_creates(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        # the first reply runs (0.7 s of fake speech); 8 more queue; the 10th is refused
        ws.send({"type": "reply.create", "instructions": "Wait a moment."})
        for _ in range(9):
            ws.send({"type": "reply.create", "instructions": "K"})
        events = ws.until("session.error", skip_audio=True)
        error = events[-1]
        assert error == {
            "type": "session.error",
            "code": "invalid_value",
            "message": "Too many queued replies",
            "param": None,
            "session_id": session_id,
            "timestamp": error["timestamp"],
        }
        assert not [e for e in events if e["type"] == "reply.done"]  # the first still runs
        # the queued replies all play; the refused one does not
        done = 0
        while done < 9:
            if ws.recv()["type"] == "reply.done":
                done += 1
        ws.assert_quiet(0.2)


def test_too_long_instructions_and_content(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = started(ws)
        ws.send({"type": "reply.create", "instructions": "x" * 4097})
        error = ws.expect("session.error")
        assert (error["code"], error["param"], error["session_id"]) == (
            "invalid_value",
            "instructions",
            session_id,
        )
        ws.send({"type": "conversation.message", "role": "user", "content": "x" * 32_769})
        error = ws.expect("session.error")
        assert (error["code"], error["param"]) == ("invalid_value", "content")
        ws.assert_alive()


def test_bad_audio_never_reaches_turn_detection(ws_server: WsServer) -> None:
    # garbage that happens to be valid base64 is just (loud) audio; it must not break anything
    noise = base64.b64encode(np.random.default_rng(1).bytes(9_601)).decode()
    with ws_server.connect() as ws:
        started(ws, {"input": {"turn_detection": {"type": "server_vad", "min_silence": 200}}})
        ws.send({"type": "input.audio", "audio": noise})
        ws.send({"type": "input.audio", "audio": pcm16_b64(silence(400))})
        ws.until("input.speech.stopped", skip_audio=True)


def test_every_catalog_voice_starts_a_session(ws_server: WsServer) -> None:
    """Found by fuzzing: the withdrawn voices of §18.1 (`mia`, …) were refused."""
    for voice in CATALOG:
        with ws_server.connect() as ws:
            ready = ws.start({"output": {"voice": voice}})
            assert ready["config"]["output"]["voice"] == voice
