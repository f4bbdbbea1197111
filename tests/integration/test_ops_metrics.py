"""Operations routes: /healthz states, /metrics exposition, the browser token, the web page."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_client
from vocalis import __version__, metrics
from vocalis.audio import float_to_pcm16, read_wav
from vocalis.providers.fake import build_fake_providers
from vocalis.server.app import create_app
from vocalis.settings import Settings

SPEECH = Path(__file__).parents[1] / "data" / "tts_close_today.wav"

REQUIRED_FAMILIES = {
    # family name as parsed -> type (counters are exposed as <name>_total)
    "vocalis_sessions_active": "gauge",
    "vocalis_sessions": "counter",
    "vocalis_session_errors": "counter",
    "vocalis_reply_time_to_first_audio_seconds": "histogram",
    "vocalis_turn_end_latency_seconds": "histogram",
    "vocalis_bargeins": "counter",
    "vocalis_tool_calls": "counter",
    "vocalis_input_audio_seconds": "counter",
    "vocalis_output_audio_seconds": "counter",
    "vocalis_provider_latency_seconds": "histogram",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A served app whose providers have loaded (start-up runs in the background)."""
    with make_client(data_dir=str(tmp_path)) as served:
        _wait_ready(served)
        yield served


def _wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 20
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "server never became ready"
        time.sleep(0.02)


def _scrape(client: TestClient) -> dict[str, Any]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    for family in families.values():
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
    raise AssertionError(f"no sample {sample_name} {labels}")


def _one_turn(client: TestClient) -> str:
    """A session that hears one utterance, gets its reply, and ends."""
    speech, _ = read_wav(SPEECH, sample_rate=24_000)
    pcm = float_to_pcm16(speech) + bytes(24_000 * 2 * 2)
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "session.update", "session": {}})
        assert ws.receive_json()["type"] == "session.updated"
        ready = ws.receive_json()
        assert ready["type"] == "session.ready"
        for offset in range(0, len(pcm), 4800):
            chunk = base64.b64encode(pcm[offset : offset + 4800]).decode()
            ws.send_json({"type": "input.audio", "audio": chunk})
        while True:
            event = ws.receive_json()
            if event["type"] == "reply.done":
                break
        ws.send_json({"type": "session.end"})
        while ws.receive_json()["type"] != "session.ended":
            pass
    return str(ready["session_id"])


def test_healthz_reports_ok_with_version_once_ready(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "providers": "fake",
        **({"storage": response.json()["storage"]} if "storage" in response.json() else {}),
        "capacity": {
            "max_sessions": None,  # the fake stack has no budget
            "sessions": 0,
            "available": None,
            "accepting": True,
            "lag_seconds": 0.0,
            "max_lag_seconds": 1.0,
        },
    }


def test_healthz_is_503_while_starting_and_draining(tmp_path: Path) -> None:
    client = make_client(data_dir=str(tmp_path))  # lifespan not entered: models "loading"
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "starting"})
    client.app.state.vocalis.status = "draining"  # type: ignore[attr-defined]
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "draining"})


class _Storage:
    def __init__(self, ping: Any) -> None:
        self.ping = ping

    async def aclose(self) -> None:
        pass


def test_healthz_reports_storage_reachability(client: TestClient) -> None:
    state = client.app.state.vocalis  # type: ignore[attr-defined]
    original = state.storage

    async def answers() -> bool:
        return True

    def broken() -> bool:
        raise ConnectionError("database is down")

    try:
        state.storage = _Storage(answers)
        assert client.get("/healthz").json()["storage"] == "ok"
        state.storage = _Storage(broken)
        response = client.get("/healthz")
        assert response.status_code == 200  # sessions still work without storage
        assert response.json()["storage"] == "unreachable"
        state.storage = object()  # no ping(): nothing reported
        assert "storage" not in client.get("/healthz").json()
    finally:
        state.storage = original


def test_metrics_exposes_every_contract_family_after_a_session(client: TestClient) -> None:
    _one_turn(client)
    families = _scrape(client)
    for name, kind in REQUIRED_FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
    assert _value(families, "vocalis_sessions_active") == 0  # synced from the manager
    for sample in (s for f in families.values() for s in f.samples):
        for value in sample.labels.values():
            assert not value.startswith(("sess_", "resp_", "call_")), sample


def test_metric_functions_move_their_series(client: TestClient) -> None:
    before = _scrape(client)
    metrics.session_error("unauthorized")
    metrics.session_error("something the client made up")
    metrics.session_ended("client_end")
    metrics.session_started()
    metrics.reply_first_audio(0.4)
    metrics.turn_end_latency(0.9)
    metrics.barge_in()
    metrics.tool_call("timed_out")
    metrics.input_audio(1.5)
    metrics.output_audio(2.0)
    metrics.provider_latency("fake", "stt", 0.12)
    after = _scrape(client)

    def delta(sample: str, **labels: str) -> float:
        return _value(after, sample, **labels) - _value(before, sample, **labels)

    assert delta("vocalis_session_errors_total", code="unauthorized") == 1
    assert delta("vocalis_session_errors_total", code="other") == 1  # never the raw text
    assert delta("vocalis_sessions_total", reason="client_end") == 1
    assert delta("vocalis_reply_time_to_first_audio_seconds_count") == 1
    assert delta("vocalis_turn_end_latency_seconds_sum") == pytest.approx(0.9)
    assert delta("vocalis_bargeins_total") == 1
    assert delta("vocalis_tool_calls_total", outcome="timed_out") == 1
    assert delta("vocalis_input_audio_seconds_total") == pytest.approx(1.5)
    assert delta("vocalis_output_audio_seconds_total") == pytest.approx(2.0)
    assert (
        _value(after, "vocalis_provider_latency_seconds_count", provider="fake", stage="stt") >= 1
    )


def test_browser_token_in_open_mode_starts_a_session(client: TestClient) -> None:
    response = client.post("/v1/browser-token")
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in_seconds"] == 60
    token = body["token"]
    with client.websocket_connect(f"/v1/ws?token={token}") as ws:
        ws.send_json({"type": "session.update", "session": {}})
        assert ws.receive_json()["type"] == "session.updated"
        assert ws.receive_json()["type"] == "session.ready"
        ws.send_json({"type": "session.end"})
        while ws.receive_json()["type"] != "session.ended":
            pass


def test_browser_token_needs_the_operator_when_keys_are_set(tmp_path: Path) -> None:
    with make_client(data_dir=str(tmp_path / "a"), api_keys=["k1"]) as keyed:
        _wait_ready(keyed)  # leaving while storage still opens can hang the test client
        response = keyed.post("/v1/browser-token")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
        assert "VOCALIS_BROWSER_TOKENS" in response.json()["message"]
    with make_client(data_dir=str(tmp_path / "b"), api_keys=["k1"], browser_tokens=True) as open_:
        _wait_ready(open_)
        token = open_.post("/v1/browser-token").json()["token"]
        with open_.websocket_connect(f"/v1/ws?token={token}") as ws:
            ws.send_json({"type": "session.update", "session": {}})
            assert ws.receive_json()["type"] == "session.updated"
            ready = ws.receive_json()
            assert ready["type"] == "session.ready"
            ws.send_json({"type": "session.end"})
            while ws.receive_json()["type"] != "session.ended":
                pass
        # a token is single use
        with open_.websocket_connect(f"/v1/ws?token={token}") as ws:
            assert ws.receive_json()["code"] == "unauthorized"


def test_web_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    worklet = client.get("/static/capture-worklet.js")
    assert worklet.status_code == 200
    assert "registerProcessor" in worklet.text
    assert "vocalisStats" in client.get("/static/app.js").text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


def test_provider_label_names_the_engine_of_each_stage() -> None:
    details = {"llm": "external http://gpu:8000/v1 (qwen)", "stt": "faster-whisper base.en"}
    name = "embedded+external-llm"
    assert metrics.provider_label(name, details, "llm_first_token") == "external"
    assert metrics.provider_label(name, details, "stt") == "embedded"
    assert metrics.provider_label("fake", {"all": "fakes"}, "tts_first_audio") == "fake"


def test_timed_providers_record_latency_of_every_stage(tmp_path: Path) -> None:
    settings = Settings(providers="fake", data_dir=tmp_path)
    app = create_app(settings, providers=metrics.timed(build_fake_providers()))
    with TestClient(app) as client:
        _wait_ready(client)
        before = _scrape(client)
        _one_turn(client)
        after = _scrape(client)
    for stage in ("vad", "stt", "turn", "llm_first_token", "tts_first_audio"):
        count = "vocalis_provider_latency_seconds_count"
        labels = {"provider": "fake", "stage": stage}
        previous = _value(before, count, **labels) if _has(before, count, **labels) else 0.0
        assert _value(after, count, **labels) > previous, stage


def _has(families: dict[str, Any], sample_name: str, **labels: str) -> bool:
    try:
        _value(families, sample_name, **labels)
    except AssertionError:
        return False
    return True
