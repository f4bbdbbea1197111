"""Fuzzing ``/v1/ws`` through the real route (issue #13; strategies in ``tests/fuzzing.py``).

Each case is one connection: up to three frames before any session, a first ``session.update``,
then up to six frames inside the session, and ``session.end``. After every frame a probe follows
— ``{"type":"probe.<n>"}`` before the session (answered ``Unknown message type``), a
``session.update`` setting a marker prompt inside it (answered ``session.updated``) — so the
answers to each frame are exactly the events before the probe's. Properties:

* no crash: no ``internal_error``, no ERROR record in the logs, no close the contract does not
  name for that frame;
* every ``session.error`` is a §16.1 entry (code, exact message, ``param``) and one the frame
  may get; frames with one exact answer (bad JSON, unknown ids…) get it;
* the session stays alive: the probe after every non-fatal error is answered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from tests.fuzzing import (
    CASES,
    Expect,
    Frame,
    catalogue_problem,
    event_frames,
    examples,
    expect_for,
    valid_session,
)
from tests.integration.conftest import MakeServer, WsClient, WsServer

pytestmark = pytest.mark.fuzz


class ErrorLog(logging.Handler):
    """Every record at ERROR or above (``log.exception``, asyncio's unretrieved exceptions)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def fuzz_server(make_ws_server: MakeServer) -> WsServer:
    # no legacy fallback or first-message timeout inside a case; a dropped socket ends at once
    return make_ws_server(
        legacy_ready_timeout_seconds=0, first_message_timeout_seconds=600, resume_grace_seconds=0
    )


class Case:
    """One connection's walk through the frames, with the oracle's bookkeeping."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.session_id: str | None = None
        self.config: dict[str, Any] | None = None
        self.closed: int | None = None
        self.probes = 0

    @property
    def in_session(self) -> bool:
        return self.session_id is not None

    def exchange(self, frame: Frame) -> None:
        expect = expect_for(frame, self.in_session)
        if self.in_session and frame.kind == "session.update" and self._touches_text_side(frame):
            expect = expect_for(Frame(frame.text, frame.kind, frame.data, "near"), True)
        CASES.add("ws frames")
        self.ws.send(frame.text)
        if expect.close == 1000:
            self._expect_end(frame)
            return
        was_in_session = self.in_session
        self.probes += 1
        marker = f"probe {self.probes}"
        if was_in_session:
            self.ws.send({"type": "session.update", "session": {"system_prompt": marker}})
        else:
            self.ws.send({"type": f"probe.{self.probes}"})
        errors: list[tuple[str, str]] = []
        while True:
            try:
                event = self.ws.recv(timeout=20)
            except WebSocketDisconnect as closed:
                self.closed = closed.code
                self._check_close(frame, expect, errors, closed.code)
                return
            type_ = event["type"]
            if type_ == "session.error":
                if (
                    not was_in_session
                    and event["message"] == f"Unknown message type: probe.{self.probes}"
                ):
                    break
                problem = catalogue_problem(event)
                assert problem is None, (frame.label, frame.text[:300], problem)
                assert expect.allows(event["code"], event["message"]), (
                    frame.label,
                    frame.text[:300],
                    event,
                )
                assert event["session_id"] == self.session_id, event
                errors.append((event["code"], event["message"]))
            elif type_ == "session.updated":
                if event["config"]["system_prompt"] == marker and was_in_session:
                    break
                if not self.in_session:
                    assert expect.creates, (frame.label, event)
            elif type_ == "session.ready":
                assert not self.in_session and expect.creates, (frame.label, event)
                self.session_id = event["session_id"]
                self.config = event["config"]
            elif type_ == "session.ended":
                raise AssertionError(f"session ended after {frame.label}: {event}")
            else:
                assert self.in_session, (frame.label, event)
        if expect.required is not None:
            assert expect.required in errors, (frame.label, frame.text[:300], errors)
        if expect.must_create:
            assert self.in_session, (frame.label, frame.text[:300], errors)

    def _touches_text_side(self, frame: Frame) -> bool:
        session = frame.data.get("session") if isinstance(frame.data, dict) else None
        if not isinstance(session, dict) or self.config is None:
            return False
        return any(
            side in session and self.config[side] == {"type": "text"}
            for side in ("input", "output")
        )

    def _check_close(
        self, frame: Frame, expect: Expect, errors: list[tuple[str, str]], code: int
    ) -> None:
        assert expect.close == code, (frame.label, frame.text[:300], errors, code)
        if expect.creates:  # a fatal first update: one error, not invalid_format (§7.1)
            assert expect.may_close, (frame.label, frame.text[:300], errors, code)
            assert len(errors) == 1 and errors[0][0] != "invalid_format", (frame.label, errors)
        elif expect.required is not None:
            assert errors == [expect.required], (frame.label, errors)

    def _expect_end(self, frame: Frame) -> None:
        while True:
            try:
                event = self.ws.recv(timeout=20)
            except WebSocketDisconnect as closed:
                raise AssertionError(f"closed {closed.code} before session.ended") from None
            assert event["type"] != "session.error", (frame.label, event)
            if event["type"] == "session.ended":
                break
        self.closed = self.ws.expect_close()
        assert self.closed == 1000

    def finish(self) -> None:
        if self.closed is None and self.in_session:
            self.exchange(Frame('{"type":"session.end"}', "session.end", {"type": "session.end"}))


def first_updates() -> st.SearchStrategy[Frame]:
    return st.one_of(
        valid_session(first=True).map(
            lambda s: Frame(
                _dumps({"type": "session.update", "session": s}),
                "session.update",
                {"type": "session.update", "session": s},
                "valid",
            )
        ),
        event_frames(in_session=False),
    )


def _dumps(data: Any) -> str:
    return json.dumps(data)


@examples(default=40, fuzz=2200)
@given(
    pre=st.lists(event_frames(in_session=False), max_size=3),
    first=first_updates(),
    body=st.lists(event_frames(in_session=True), min_size=1, max_size=6),
)
def test_fuzzed_frames_get_contract_answers(
    fuzz_server: WsServer,
    error_log: ErrorLog,
    pre: list[Frame],
    first: Frame,
    body: list[Frame],
) -> None:
    error_log.records.clear()
    CASES.add("ws connections")
    with fuzz_server.connect() as ws:
        case = Case(ws)
        for frame in [*pre, first]:
            if case.closed is not None or case.in_session:
                break
            case.exchange(frame)
        if case.closed is None and not case.in_session:
            case.exchange(
                Frame(
                    '{"type":"session.update"}',
                    "session.update",
                    {"type": "session.update"},
                    "valid",
                )
            )
        for frame in body:
            if case.closed is not None:
                break
            case.exchange(frame)
        case.finish()
    assert not error_log.records, [r.getMessage() for r in error_log.records]
