"""Admission at the limit through the real route: the extra caller gets ``at_capacity`` (1013)
at once, the sessions already held carry on untouched, and /healthz and /metrics tell a load
balancer about it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.integration.conftest import WsServer

MakeServer = Callable[..., WsServer]
AT_CAPACITY = "Server is at capacity; try again later"


def metric(server: WsServer, name: str) -> float:
    text = server.client.get("/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


def test_past_the_budget_the_extra_caller_is_refused_and_the_others_are_untouched(
    make_ws_server: MakeServer,
) -> None:
    server = make_ws_server(max_sessions=2)
    refused_before = metric(server, 'vocalis_admission_refused_total{reason="full"}')
    with server.connect() as a, server.connect() as b:
        a.start()
        b.start()
        health = server.client.get("/healthz").json()["capacity"]
        assert health["max_sessions"] == 2 and health["sessions"] == 2
        assert health["available"] == 0 and health["accepting"] is False
        with server.connect() as extra:
            extra.send({"type": "session.update"})
            extra.expect_error("at_capacity", AT_CAPACITY, session_id=None, timeout=1.0)
            assert extra.expect_close(timeout=1.0) == 1013
        # the callers already in keep their whole service: no error, replies still come
        for held in (a, b):
            held.assert_alive()
            assert not [e for e in held.events if e["type"] == "session.error"]
        assert metric(server, "vocalis_capacity_sessions") == 2
        assert metric(server, "vocalis_capacity_available_sessions") == 0
    assert metric(server, 'vocalis_admission_refused_total{reason="full"}') == refused_before + 1


def test_workers_behind_refuse_new_sessions_but_resumes_get_in(make_ws_server: MakeServer) -> None:
    server = make_ws_server(admission_max_lag_seconds=0.5)
    with server.connect() as first:
        ready = first.start()
        first.disconnect()
    server.wait_session_state(ready["session_id"], "disconnected")
    lag = [3.0]
    server.call(setattr, server.state.manager, "load_probe", lambda: lag[0])
    health = server.client.get("/healthz").json()["capacity"]
    assert health["accepting"] is False and health["lag_seconds"] == 3.0
    with server.connect() as newcomer:
        newcomer.send({"type": "session.update"})
        newcomer.expect_error("at_capacity", AT_CAPACITY, session_id=None, timeout=1.0)
        assert newcomer.expect_close(timeout=1.0) == 1013
    with server.connect() as back:
        back.send({"type": "session.resume", "session_id": ready["session_id"]})
        assert back.expect("session.ready")["session_id"] == ready["session_id"]
        back.assert_alive()
    lag[0] = 0.0  # caught up: new callers are welcome again
    with server.connect() as later:
        later.start()


def test_unset_max_sessions_takes_the_provider_stacks_measured_budget(
    make_ws_server: MakeServer,
) -> None:
    server = make_ws_server()

    def shrink(manager: Any) -> None:
        manager.providers = replace(manager.providers, session_budget=1)

    server.call(shrink, server.state.manager)
    with server.connect() as first:
        first.start()
        with server.connect() as second:
            second.send({"type": "session.update"})
            second.expect_error("at_capacity", AT_CAPACITY, timeout=1.0)
            assert second.expect_close(timeout=1.0) == 1013
        assert server.client.get("/healthz").json()["capacity"]["max_sessions"] == 1


def test_an_explicit_zero_is_unlimited_whatever_the_stack_says(make_ws_server: MakeServer) -> None:
    server = make_ws_server(max_sessions=0)

    def shrink(manager: Any) -> None:
        manager.providers = replace(manager.providers, session_budget=1)

    server.call(shrink, server.state.manager)
    with server.connect() as first, server.connect() as second:
        first.start()
        second.start()
        assert server.client.get("/healthz").json()["capacity"]["available"] is None
