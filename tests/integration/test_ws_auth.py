"""Authentication of the voice agent socket (§3) and capacity (§15.4), through the real route."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import MakeServer, WsClient, WsServer

KEYS = ["key-one", "key-two"]


@pytest.fixture
def keyed(make_ws_server: MakeServer) -> WsServer:
    return make_ws_server(api_keys=KEYS)


def expect_unauthorized(ws: WsClient) -> None:
    ws.expect_error("unauthorized", "Authentication failed", param=None, session_id=None)
    assert ws.expect_close() == 1008


@pytest.mark.parametrize("path", ["/v1/ws", "/v1/realtime"])
def test_missing_credential_is_refused_before_any_message(keyed: WsServer, path: str) -> None:
    with keyed.connect(path) as ws:
        expect_unauthorized(ws)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/ws", {"Authorization": "Bearer wrong"}),
        ("/v1/ws", {"Authorization": "wrong"}),
        ("/v1/ws", {"Authorization": "Bearer "}),
        ("/v1/ws?token=wrong", {}),
        ("/v1/ws?token=", {}),
        ("/v1/ws?api_key=key-one", {}),  # only `token` is a credential
        # the header wins over the query
        ("/v1/ws?token=key-one", {"Authorization": "Bearer wrong"}),
    ],
)
def test_wrong_credentials(keyed: WsServer, path: str, headers: dict[str, str]) -> None:
    with keyed.connect(path, headers=headers) as ws:
        expect_unauthorized(ws)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/ws", {"Authorization": "Bearer key-one"}),
        ("/v1/ws", {"Authorization": "bearer key-two"}),
        ("/v1/ws", {"Authorization": "BEARER key-one"}),
        ("/v1/ws", {"Authorization": "key-two"}),  # bare header (App. A)
        ("/v1/ws?token=key-one", {}),
        ("/v1/ws?token=wrong", {"Authorization": "Bearer key-two"}),  # header wins
        ("/v1/realtime?token=key-two&other=ignored", {"Origin": "https://anywhere.example"}),
    ],
)
def test_accepted_credentials(keyed: WsServer, path: str, headers: dict[str, str]) -> None:
    with keyed.connect(path, headers=headers) as ws:
        ws.assert_quiet(0.1)  # nothing before the first message
        ws.start()
        ws.assert_alive()


@pytest.mark.parametrize("credential", [None, "anything"])
def test_open_mode_accepts_any_connection(ws_server: WsServer, credential: str | None) -> None:
    with ws_server.connect(credential=credential) as ws:
        ws.start()


def test_open_mode_still_redeems_a_temporary_token_and_applies_its_cap(
    ws_server: WsServer,
) -> None:
    token, _ = ws_server.call(ws_server.state.tokens.mint, 60, 120)
    with ws_server.connect(credential=token) as ws:
        before = time.time()
        ready = ws.start()
        assert int(before) + 120 - 1 <= ready["expires_at"] <= int(time.time()) + 120 + 1
    with ws_server.connect(credential=token) as ws:  # redeemed: now just any credential
        assert ws.start()["expires_at"] > time.time() + 10000


def test_temporary_token_is_single_use_and_caps_the_session(keyed: WsServer) -> None:
    token, _ = keyed.call(keyed.state.tokens.mint, 60, 600)
    with keyed.connect(credential=token) as ws:
        before = time.time()
        ready = ws.start()
        assert int(before) + 600 - 1 <= ready["expires_at"] <= int(time.time()) + 600 + 1
    with keyed.connect(credential=token) as ws:  # redeemed
        expect_unauthorized(ws)


def test_expired_temporary_token_is_refused(keyed: WsServer) -> None:
    token, _ = keyed.call(keyed.state.tokens.mint, -1, 600)  # its window has passed
    with keyed.connect(credential=token) as ws:
        expect_unauthorized(ws)


def test_temporary_token_is_redeemed_even_if_the_session_fails(keyed: WsServer) -> None:
    token, _ = keyed.call(keyed.state.tokens.mint, 60, 600)
    with keyed.connect(credential=token) as ws:
        ws.send({"type": "session.update", "session": {"output": {"voice": "nobody"}}})
        assert ws.expect("session.error")["code"] == "invalid_value"
        assert ws.expect_close() == 1008
    with keyed.connect(f"/v1/ws?token={token}") as ws:
        expect_unauthorized(ws)


def test_resume_token_cannot_start_a_session(keyed: WsServer) -> None:
    with keyed.connect(credential="key-one") as ws:
        resume_token = ws.start()["resume_token"]
        with keyed.connect(credential=resume_token) as other:
            other.send({"type": "session.update"})
            expect_unauthorized(other)
        ws.assert_alive()  # the session itself is unaffected


def test_resume_token_connection_gets_no_legacy_session(make_ws_server: MakeServer) -> None:
    server = make_ws_server(
        api_keys=KEYS, legacy_ready_timeout_seconds=0.3, first_message_timeout_seconds=0.8
    )
    with server.connect(credential="key-one") as ws:
        resume_token = ws.start()["resume_token"]
        with server.connect(credential=resume_token) as other:
            other.expect_error(
                "invalid_format", "Timed out waiting for session.update or session.resume"
            )
            assert other.expect_close() == 1008


# ------------------------------------------------------------------------------ capacity
def test_at_capacity_refuses_a_new_session_with_1013(make_ws_server: MakeServer) -> None:
    server = make_ws_server(max_sessions=1)
    with server.connect() as first:
        session_id = first.start()["session_id"]
        with server.connect() as second:
            second.send({"type": "session.update"})
            second.expect_error(
                "at_capacity", "Server is at capacity; try again later", session_id=None
            )
            assert second.expect_close() == 1013
        first.assert_alive()
        first.send({"type": "session.end"})
        first.until("session.ended")
    server.wait_session_state(session_id, None)
    with server.connect() as third:
        third.start()


def test_legacy_fallback_at_capacity(make_ws_server: MakeServer) -> None:
    server = make_ws_server(max_sessions=1, legacy_ready_timeout_seconds=0.2)
    with server.connect() as first:
        first.expect("session.ready")  # the fallback session takes the only place
        with server.connect() as second:
            second.expect_error("at_capacity", "Server is at capacity; try again later")
            assert second.expect_close() == 1013


def test_detached_sessions_count_and_resumes_are_exempt(make_ws_server: MakeServer) -> None:
    server = make_ws_server(max_sessions=1)
    with server.connect() as first:
        ready = first.start()
        first.disconnect()
    server.wait_session_state(ready["session_id"], "disconnected")
    with server.connect() as second:
        second.send({"type": "session.update"})
        assert second.expect("session.error")["code"] == "at_capacity"
        assert second.expect_close() == 1013
    with server.connect() as third:
        third.send({"type": "session.resume", "session_id": ready["session_id"]})
        assert third.expect("session.ready")["session_id"] == ready["session_id"]
        third.assert_alive()
