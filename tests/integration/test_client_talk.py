"""``vocalis talk`` against a real server with fake providers: files in, transcripts and WAV out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.live_server import LiveServer, live_server
from vocalis.audio import read_wav
from vocalis.client.talk import (
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_REPLY_ERROR,
    EXIT_SESSION_ERROR,
    TalkOptions,
    UsageError,
    talk,
)

DATA = Path(__file__).parents[1] / "data"
SPEECH = DATA / "tts_close_today.wav"
TALK_TIMEOUT = 90


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("talk-server")) as running:
        yield running


def _vocalis(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vocalis.cli", *args],
        capture_output=True,
        text=True,
        timeout=TALK_TIMEOUT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_talk_speaks_a_wav_file_and_records_the_reply(server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    result = _vocalis("talk", "--url", server.ws_url, "--input", str(SPEECH), "--output", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    user = [line for line in lines if line.startswith("You: ")]
    agent = [line for line in lines if line.startswith("Agent: ")]
    # the fake recogniser transcribes an utterance as "speech <N> ms"; the fake LLM echoes it
    assert len(user) == 1 and user[0].startswith("You: speech ")
    spoken = user[0].removeprefix("You: ")
    assert agent == [f"Agent: You said: {spoken}"]
    assert "\r" not in result.stdout  # not a terminal: plain lines, no live updates
    assert "audio_rate_violation" not in result.stderr  # streamed at real-time pace
    samples, rate = read_wav(out)
    assert rate == 24_000
    assert len(samples) / rate > 0.5
    assert float(abs(samples).max()) > 0.05  # the fake TTS tone, not silence


def test_talk_answers_tool_calls_with_python_functions(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "shop_tools.py").write_text(
        textwrap.dedent(
            '''
            def lookup_order(order_id: str) -> dict:
                """Look up an order by id."""
                return {"status": "shipped", "order": order_id}

            TOOLS = {"lookup_order": lookup_order}
            '''
        )
    )
    result = _vocalis(
        "talk",
        "--url",
        server.ws_url,
        "--tools",
        "shop_tools:TOOLS",
        "--say",
        'call lookup_order {"order_id": "ORD-12345"}',
        env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert result.returncode == 0, result.stderr
    assert 'Tool call: lookup_order {"order_id": "ORD-12345"}' in result.stdout
    assert 'Tool result: lookup_order -> {"status":"shipped","order":"ORD-12345"}' in result.stdout
    # the follow-up reply carries the result (fake LLM: "Tool result: <result>.")
    assert 'Agent: Tool result: {"status":"shipped","order":"ORD-12345"}.' in result.stdout


def test_talk_text_reads_typed_lines_and_prints_written_replies(server: LiveServer) -> None:
    """``--text``: a text session (§6.8) typed on stdin, as a person would at a terminal."""
    result = subprocess.run(
        [sys.executable, "-m", "vocalis.cli", "talk", "--url", server.ws_url, "--text"],
        input="what time is it\n\nand tomorrow\n",
        capture_output=True,
        text=True,
        timeout=TALK_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("You:", "Agent:"))]
    assert lines == [
        "You: what time is it",
        "Agent: You said: what time is it",
        "You: and tomorrow",
        "Agent: You said: and tomorrow",
    ]


async def test_talk_text_refuses_audio_options(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--text cannot be combined"):
        await talk(TalkOptions(text=True, input=str(SPEECH)))


async def test_talk_exits_after_n_replies(server: LiveServer) -> None:
    out, err = io.StringIO(), io.StringIO()
    options = TalkOptions(
        url=server.ws_url, greeting="Welcome to the shop", say=["hello"], exit_after_reply=2
    )
    code = await talk(options, out=out, err=err)
    assert code == EXIT_OK, err.getvalue()
    assert out.getvalue().splitlines() == [
        "Agent: Welcome to the shop",
        "You: hello",
        "Agent: You said: hello",
    ]
    assert "client_end" in err.getvalue()


async def test_talk_reports_session_errors_with_exit_1(server: LiveServer) -> None:
    err = io.StringIO()
    options = TalkOptions(url=server.ws_url, voice="nobody", say=["hi"])
    code = await talk(options, out=io.StringIO(), err=err)
    assert code == EXIT_SESSION_ERROR
    assert "Invalid voice 'nobody'" in err.getvalue()
    assert "[invalid_value]" in err.getvalue()


async def test_talk_exits_5_when_a_reply_fails(server: LiveServer) -> None:
    err = io.StringIO()
    options = TalkOptions(url=server.ws_url, say=["fail 503"])  # the fake LLM fails with 503
    code = await talk(options, out=io.StringIO(), err=err)
    assert code == EXIT_REPLY_ERROR, err.getvalue()
    assert "Agent error: LLM request failed: HTTP 503 (llm_error)" in err.getvalue()


async def test_talk_exits_1_on_a_session_error_during_the_session(server: LiveServer) -> None:
    err = io.StringIO()
    too_long = "x" * 32_769  # conversation.message content over §7.6's limit: non-fatal
    options = TalkOptions(url=server.ws_url, say=[too_long, "hello"])
    code = await talk(options, out=io.StringIO(), err=err)
    assert code == EXIT_SESSION_ERROR, err.getvalue()
    assert "[invalid_value]" in err.getvalue()


async def test_talk_tells_a_missing_credential_from_a_rejected_one(tmp_path: Path) -> None:
    with live_server(tmp_path, api_keys=["the-key"]) as keyed:
        for api_key, expected in (
            (None, "No credential was sent and the server requires one"),
            ("wrong-key", "The server rejected the credential"),
        ):
            err = io.StringIO()
            options = TalkOptions(url=keyed.ws_url, api_key=api_key, say=["hi"])
            code = await talk(options, out=io.StringIO(), err=err)
            assert code == EXIT_SESSION_ERROR
            assert expected in err.getvalue(), err.getvalue()
            assert "[unauthorized]" in err.getvalue()
        options = TalkOptions(url=keyed.ws_url, api_key="the-key", say=["hi"])
        assert await talk(options, out=io.StringIO(), err=io.StringIO()) == EXIT_OK


async def test_talk_reports_an_unreachable_server_with_exit_3(tmp_path: Path) -> None:
    err = io.StringIO()
    options = TalkOptions(url="ws://127.0.0.1:9/v1/ws", say=["hi"])
    code = await talk(options, out=io.StringIO(), err=err)
    assert code == EXIT_CONNECTION
    assert "cannot connect" in err.getvalue()


async def test_talk_rejects_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        await talk(TalkOptions(input=str(tmp_path / "missing.wav")))
    with pytest.raises(UsageError, match="cannot load tools"):
        await talk(TalkOptions(tools=["no_such_module_here:TOOLS"], say=["hi"]))
    with pytest.raises(UsageError, match="--agent-id cannot be combined"):
        await talk(TalkOptions(agent_id="agent_x", voice="ivy", say=["hi"]))


def test_talk_cli_usage_error_exit_code(tmp_path: Path) -> None:
    result = _vocalis("talk", "--input", str(tmp_path / "missing.wav"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


@pytest.mark.models
def test_talk_with_the_embedded_models(tmp_path: Path) -> None:
    """The same conversation with real speech recognition, LLM and synthesis."""
    pytest.importorskip("xllamacpp")
    from vocalis.providers.embedded import ensure_assets
    from vocalis.settings import Settings

    assets = ensure_assets(Settings(), allow_download=True)  # `vocalis models prepare`
    models = {
        "embedded_llm_model_path": assets.llm_model,
        "embedded_turn_model_path": assets.turn_model,
    }
    out = tmp_path / "out.wav"
    with live_server(
        tmp_path / "data", providers="embedded", start_timeout=300, **models
    ) as server:
        result = _vocalis(
            "talk", "--url", server.ws_url, "--input", str(SPEECH), "--output", str(out),
            "--timeout", "120",
        )  # fmt: skip
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    user = [line for line in result.stdout.splitlines() if line.startswith("You: ")]
    agent = [line for line in result.stdout.splitlines() if line.startswith("Agent: ")]
    assert user and "close" in user[0].lower(), result.stdout  # "What time do you close today?"
    assert agent and len(agent[0]) > len("Agent: "), result.stdout
    samples, rate = read_wav(out)
    assert rate == 24_000 and len(samples) / rate > 0.5
