"""Bad input never kills a session or the server (§2, §5): each bad frame gets its answer, the
session keeps working, and other connections are unaffected."""

from __future__ import annotations

import json
import time

from tests.harness import pcm16_b64, silence
from tests.integration.conftest import WsClient, WsServer

BURST = 20_000
BAD_JSON = ("invalid_format", "Invalid JSON format.")

# (frame, code, message) — sent as text frames
BAD_TEXT: list[tuple[str, str, str]] = [
    ("{", "invalid_format", "Invalid JSON format."),
    ("\x00\x01\x02", "invalid_format", "Invalid JSON format."),
    ("[" * 100_000, "invalid_format", "Invalid JSON format."),  # nesting beyond recursion
    ('{"type":"x","n":' + "1" * 5_000 + "}", "invalid_format", "Invalid JSON format."),
    ("[]", "invalid_format", "Invalid message format"),
    ("true", "invalid_format", "Invalid message format"),
    ('{"type": ["input.audio"]}', "invalid_format", "Invalid message format"),
    (
        '{"type": "input.audio.append"}',
        "invalid_format",
        "Unknown message type: input.audio.append",
    ),
    ('{"type": "error"}', "invalid_format", "Unknown message type: error"),
    (
        '{"type": "conversation.message", "role": "user", "content": {"nested": 1}}',
        "invalid_format",
        "Invalid message format for type 'conversation.message'",
    ),
    (
        '{"type": "session.update", "session": {"input": {"format": "pcm"}}}',
        "invalid_format",
        "Invalid message format for type 'session.update'",
    ),
    (
        '{"type": "session.update", "session": {"tools": [5]}}',
        "invalid_format",
        "Invalid message format for type 'session.update'",
    ),
    # lone surrogates are not Unicode text: echoing them would break the socket's UTF-8
    ('{"type": "session.update", "session": {"system_prompt": "a\\ud800"}}', *BAD_JSON),
    ('{"type": "conversation.message", "role": "user", "content": "\\udc00"}', *BAD_JSON),
    ('{"type": "\\udfff"}', *BAD_JSON),
    ('{"type": "input.audio", "audio": "%%%"}', "invalid_audio", "Invalid audio data"),
    ('{"type": "input.audio", "audio": "QUJD-"}', "invalid_audio", "Invalid audio data"),
    (
        json.dumps({"type": "conversation.message", "role": "user", "content": "x" * 2 * 2**20}),
        "invalid_format",
        "Message too large",
    ),
]


def answer_bad_frames(ws: WsClient, session_id: str | None) -> None:
    for text, code, message in BAD_TEXT:
        ws.send(text)
        ws.expect_error(code, message, session_id=session_id)
    for data in (b"", b"\xff\xfe", json.dumps({"type": "session.end"}).encode()):
        ws.send_bytes(data)
        ws.expect_error("invalid_format", "Binary frames are not supported", session_id=session_id)


def test_bad_frames_never_kill_a_session(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        session_id = ws.start()["session_id"]
        answer_bad_frames(ws, session_id)
        ws.assert_alive()
        with ws_server.connect() as other:  # the server still serves new connections
            other.start()
            other.assert_alive()


def test_bad_frames_before_a_session_keep_the_connection_waiting(ws_server: WsServer) -> None:
    with ws_server.connect() as ws:
        # these audio frames come before session.ready: dropped without a word (§4.1)
        bad = [(t, c, m) for t, c, m in BAD_TEXT if c != "invalid_audio"]
        for text, code, message in bad:
            ws.send(text)
            ws.expect_error(code, message, session_id=None)
        ws.send('{"type": "input.audio", "audio": "%%%"}')
        ws.start()
        ws.assert_alive()


def test_a_burst_of_invalid_frames_is_answered_in_order(ws_server: WsServer) -> None:
    frames = []
    expected = []
    for i in range(BURST):
        match i % 4:
            case 0:
                frames.append("{oops")
                expected.append("Invalid JSON format.")
            case 1:
                frames.append(json.dumps({"type": f"bogus.{i}"}))
                expected.append(f"Unknown message type: bogus.{i}")
            case 2:
                frames.append(json.dumps({"type": "reply.create", "instructions": i}))
                expected.append("Invalid message format for type 'reply.create'")
            case _:
                frames.append(
                    json.dumps({"type": "conversation.message", "role": "user", "content": f"m{i}"})
                )
    with ws_server.connect() as ws:
        session_id = ws.start()["session_id"]
        ws.send_burst(frames)
        errors = ws.recv_many(len(expected))
        assert [e["message"] for e in errors] == expected
        assert {(e["code"], e["session_id"]) for e in errors} == {("invalid_format", session_id)}
        # every message was processed in order: the last user message is the newest history
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done")
        assert events[0]["type"] == "reply.started"
        text = next(e for e in events if e["type"] == "transcript.agent")["text"]
        assert text == f"You said: m{BURST - 1}"


def test_a_burst_of_conversation_messages_gets_no_answers(ws_server: WsServer) -> None:
    frames = [
        json.dumps({"type": "conversation.message", "role": "user", "content": f"n{i}"})
        for i in range(BURST)
    ]
    with ws_server.connect() as ws:
        ws.start()
        ws.send_burst(frames)
        ws.send({"type": "reply.create"})
        events = ws.until("reply.done", timeout=30)
        assert events[0]["type"] == "reply.started"  # nothing answered the burst
        text = next(e for e in events if e["type"] == "transcript.agent")["text"]
        assert text == f"You said: n{BURST - 1}"


def test_a_burst_of_audio_reports_rate_violations_at_most_once_per_second(
    ws_server: WsServer,
) -> None:
    chunk = json.dumps({"type": "input.audio", "audio": pcm16_b64(silence(20))})
    with ws_server.connect() as ws:
        ws.start()
        began = time.monotonic()
        ws.send_burst([chunk] * BURST)  # 400 s of audio at once
        ws.send({"type": "reply.create", "instructions": "Ok"})
        events = ws.until("reply.started", timeout=30)
        elapsed = time.monotonic() - began
        violations = [e for e in events if e["type"] == "session.error"]
        assert violations
        assert {e["code"] for e in violations} == {"audio_rate_violation"}
        assert len(violations) <= int(elapsed) + 1
        ws.until("reply.done")
        ws.assert_alive()
