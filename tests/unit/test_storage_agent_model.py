"""Agent body validation and PUT merge rules, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from vocalis.protocol.voices import catalog_ids
from vocalis.storage import cursor
from vocalis.storage.agent_model import AgentRules, build_agent
from vocalis.storage.errors import InvalidInput

RULES = AgentRules(tuple(catalog_ids()), "default prompt", "ivy")


def body(**extra: Any) -> dict[str, Any]:
    return {"name": "A", "system_prompt": "p", "voice": "ivy", **extra}


def test_record_round_trips_through_request_view() -> None:
    doc = build_agent(
        body(
            tools=[
                {
                    "name": "t",
                    "http": {"url": "https://x.io", "headers": [{"name": "K", "value": "v"}]},
                }
            ],
            llm=[{"base_url": "https://llm", "model": "m", "api_key": "key"}],
            input={"keyterms": ["Vocalis"]},
        ),
        None,
        RULES,
        1_000,
    )
    again = build_agent(doc.request_view(), doc, RULES, 2_000)
    assert again.public == doc.public
    assert (
        again.secrets
        == doc.secrets
        == {
            "headers": {doc.public["tools"][0]["id"]: {"K": "v"}},
            "llm_api_key": "key",
            "pre_connect_requests": [],
        }
    )
    record = again.record("agent_" + "0" * 32, 1_000, 2_000, RULES)
    assert record["input"]["keyterms"] == ["Vocalis"]
    assert record["tools"][0]["http"]["headers"] == [
        {"name": "K", "last_set_at": "1970-01-01T00:00:00.001000Z"}
    ]


def test_session_object_maps_voice_and_carries_header_values() -> None:
    doc = build_agent(
        body(
            voice={"voice_id": "claire"},
            output={"voice": "ivy", "volume": 80},
            tools=[
                {
                    "name": "t",
                    "http": {"url": "https://x.io", "headers": [{"name": "K", "value": "v"}]},
                }
            ],
        ),
        None,
        RULES,
        1,
    )
    session = doc.session_object(with_secrets=True)
    assert session["output"] == {"voice": "claire", "volume": 80.0}
    assert session["tools"][0]["http"]["headers"] == [{"name": "K", "value": "v"}]
    assert doc.session_object(with_secrets=False)["tools"][0]["http"]["headers"] == [
        {"name": "K", "value": ""}
    ]


def test_duplicate_header_names_are_rejected_case_insensitively() -> None:
    headers = [{"name": "K", "value": "1"}, {"name": "k", "value": "2"}]
    with pytest.raises(InvalidInput) as info:
        build_agent(
            body(tools=[{"name": "t", "http": {"url": "https://x", "headers": headers}}]),
            None,
            RULES,
            1,
        )
    assert info.value.problems[0].param == "tools[0].http.headers[1].name"


def test_put_null_for_required_fields_is_rejected() -> None:
    doc = build_agent(body(), None, RULES, 1)
    with pytest.raises(InvalidInput) as info:
        build_agent({"system_prompt": None}, doc, RULES, 2)
    assert (info.value.problems[0].param, info.value.problems[0].message) == (
        "system_prompt",
        "Input should be a valid string",
    )


def test_cursor_round_trip_and_garbage() -> None:
    assert cursor.decode(cursor.encode(123, "agent_x")) == (123, "agent_x")
    assert cursor.decode("") is None
    for bad in ["%%%", "bm90IGpzb24", cursor.encode(1, "x")[:-3], "WyJhIiwxXQ"]:
        with pytest.raises(InvalidInput):
            cursor.decode(bad)


def test_pre_connect_header_values_are_kept_secret_and_survive_a_round_trip() -> None:
    item = {"http": {"url": "https://x.io", "headers": [{"name": "Auth", "value": "s3cret"}]}}
    doc = build_agent(body(pre_connect_requests=[item]), None, RULES, 1_000)
    assert "s3cret" not in repr(doc.public)
    assert doc.record("agent_x", 1, 1, RULES)["pre_connect_requests"][0]["http"]["headers"] == [
        {"name": "Auth"}
    ]
    # GET then PUT of the record (names only) keeps the value; the session still gets it.
    again = build_agent(doc.request_view(), doc, RULES, 2_000)
    session = again.session_object(with_secrets=True)
    assert session["pre_connect_requests"][0]["http"]["headers"] == [
        {"name": "Auth", "value": "s3cret"}
    ]
    replaced = build_agent({"pre_connect_requests": []}, again, RULES, 3_000)
    assert replaced.secrets["pre_connect_requests"] == []
