"""``vocalis talk``: a terminal voice client (microphone and speaker, or WAV files).

Conversation lines (``You:``, ``Agent:``, ``Tool call:``, ``Tool result:``) go to stdout: on a
terminal the live partial transcript updates one line in place, otherwise only final lines are
printed. Connection notes and errors go to stderr.

Exit codes:
  0  the session ended normally (reply count reached, input answered, Ctrl-C, server ended it)
     and no error was reported on the way
  1  the server sent a ``session.error``: it refused or ended the session (bad credential,
     invalid setting, capacity…), or reported an error during it
  2  bad usage: arguments, unreadable input file, tools that cannot be loaded, no microphone
  3  the server could not be reached, or the connection dropped and could not be resumed
  4  no reply in time (``--timeout``), or the input produced no reply
  5  a reply failed (``reply.error``: the LLM or the speech synthesis failed), and no
     ``session.error`` came

Why one module of ~570 lines: it is one command, and its options, display, conversation
tracking and exit codes are read together by whoever changes what ``vocalis talk`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from vocalis.client.audio_io import (
    Microphone,
    Speaker,
    WavRecorder,
    silence_pcm16,
    sounddevice_module,
    wav_to_pcm16,
)
from vocalis.client.connection import DEFAULT_URL, SAMPLE_RATE, Event, VoiceAgentClient
from vocalis.client.errors import ConnectionLost, SessionError, describe_error
from vocalis.client.tools import ToolFunction, load_tools, run_tool, tool_definitions

EXIT_OK: Final = 0
EXIT_SESSION_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONNECTION: Final = 3
EXIT_NO_REPLY: Final = 4
EXIT_REPLY_ERROR: Final = 5

IDLE_SECONDS: Final = 1.0  # quiet time after the last reply before a file session ends
QUIET_SECONDS: Final = 0.3  # quiet time before the next --say message is sent
NO_REPLY_SECONDS: Final = 10.0  # after the input, give up when nothing is happening this long
DEFAULT_REPLY_WAIT: Final = 60.0  # --timeout default beyond the input's duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vocalis talk``."""
    parser.add_argument("--url", default=DEFAULT_URL, help=f"voice agent socket ({DEFAULT_URL})")
    cred = parser.add_mutually_exclusive_group()
    cred.add_argument("--api-key", help="API key (or set VOCALIS_API_KEY)")
    cred.add_argument("--token", help="temporary token from GET /v1/token")
    parser.add_argument("--voice", help="voice id, e.g. ivy (see GET /v1/voices)")
    parser.add_argument("--system-prompt", help="instructions for the agent")
    parser.add_argument("--greeting", help="what the agent says first")
    parser.add_argument("--agent-id", help="use a stored agent (excludes the options above)")
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="Python functions answering tool calls: a dict name->callable, a list of "
        "callables or one callable (repeatable)",
    )
    parser.add_argument(
        "--input", metavar="WAV", help="speak this file (any rate/channels) instead of a mic"
    )
    parser.add_argument("--output", metavar="WAV", help="write the agent's audio (24 kHz WAV)")
    parser.add_argument(
        "--say",
        action="append",
        default=[],
        metavar="TEXT",
        help="send TEXT as a user message and ask for a reply (repeatable)",
    )
    parser.add_argument(
        "--text",
        action="store_true",
        help="a text session (contract §6.8): type instead of speaking (lines on stdin, or "
        "--say) and read the agent's replies instead of hearing them; no audio device needed",
    )
    parser.add_argument(
        "--exit-after-reply",
        type=int,
        metavar="N",
        help="end the session after N agent replies (the greeting counts)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up (exit 4) after this long; default: none with a microphone, "
        f"the input's length + {DEFAULT_REPLY_WAIT:.0f} s otherwise",
    )
    parser.add_argument(
        "--chunk-ms", type=int, default=40, help="input audio chunk length, 20-100 (40)"
    )


@dataclass
class TalkOptions:
    url: str = DEFAULT_URL
    api_key: str | None = None
    token: str | None = None
    voice: str | None = None
    system_prompt: str | None = None
    greeting: str | None = None
    agent_id: str | None = None
    tools: list[str] = field(default_factory=list)
    input: str | None = None
    output: str | None = None
    say: list[str] = field(default_factory=list)
    text: bool = False
    exit_after_reply: int | None = None
    timeout: float | None = None
    chunk_ms: int = 40

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TalkOptions:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in vars(args).items() if k in names})

    def session(self, tools: Mapping[str, ToolFunction]) -> dict[str, Any]:
        """The first ``session.update`` payload (§6)."""
        if self.agent_id:
            return {"agent_id": self.agent_id}
        session: dict[str, Any] = {}
        if self.system_prompt is not None:
            session["system_prompt"] = self.system_prompt
        if self.greeting is not None:
            session["greeting"] = self.greeting
        if self.voice is not None:
            session["output"] = {"voice": self.voice}
        if self.text:
            session["input"] = session["output"] = {"type": "text"}
        if tools:
            session["tools"] = tool_definitions(tools)
        return session


class UsageError(Exception):
    pass


class Display:
    """Conversation on ``out`` (one live line on a terminal), notes on ``err``."""

    def __init__(self, out: TextIO, err: TextIO, live: bool) -> None:
        self.out = out
        self.err = err
        self.live_enabled = live
        self._live_shown = False

    def live(self, text: str) -> None:
        if not self.live_enabled:
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        shown = text if len(text) <= width else "…" + text[-(width - 1) :]
        self.out.write("\r\x1b[K" + shown)
        self.out.flush()
        self._live_shown = True

    def line(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self._clear()
        self.err.write(text + "\n")
        self.err.flush()

    def _clear(self) -> None:
        if self._live_shown:
            self.out.write("\r\x1b[K")
            self._live_shown = False


class Conversation:
    """Follows the server events: prints them, plays or records audio, answers tools, and
    decides when a scripted session (file, ``--say``, ``--exit-after-reply``) is over."""

    def __init__(
        self,
        display: Display,
        tools: Mapping[str, ToolFunction],
        recorder: WavRecorder | None,
        speaker: Speaker | None,
        exit_after_reply: int | None,
    ) -> None:
        self.display = display
        self.tools = tools
        self.recorder = recorder
        self.speaker = speaker
        self.exit_after_reply = exit_after_reply
        self.client: VoiceAgentClient | None = None
        self.finished = asyncio.Event()
        self.activity = asyncio.Event()  # set on every conversational event
        self.replies_done = 0
        self.user_turns = 0
        self.unanswered = 0  # user turns and --say messages whose reply has not finished
        self.turn_open = False
        self.reply_open = False
        self.followups_due = 0  # tool results sent whose follow-up reply has not started
        self.ready_count = 0
        self.session_errors = 0  # session.error events during the session (non-fatal ones)
        self.reply_errors = 0  # reply.error events
        self._agent_text = ""
        self._tool_tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        return self.turn_open or self.reply_open or self.followups_due > 0 or bool(self._tool_tasks)

    async def on_event(self, event: Event) -> None:
        kind = event.get("type")
        handler = getattr(self, "_on_" + str(kind).replace(".", "_"), None)
        if handler is not None:
            handler(event)
        if kind not in ("session.ready", "session.updated", "session.error"):
            self.activity.set()

    # ------------------------------------------------------------------ session
    def _on_session_ready(self, event: Event) -> None:
        self.ready_count += 1
        if self.ready_count == 1:
            voice = (event.get("config") or {}).get("output", {}).get("voice")
            self.display.note(f"Connected: session {event.get('session_id')} (voice {voice})")
        else:
            self.display.note("Reconnected: the session was resumed")

    def _on_session_error(self, event: Event) -> None:
        self.session_errors += 1
        self.display.note("Error: " + describe_error(event))

    def _on_session_ended(self, event: Event) -> None:
        seconds = event.get("session_duration_seconds") or 0.0
        self.display.note(f"Session ended ({event.get('reason')}, {seconds:.1f} s)")

    # ------------------------------------------------------------------ user
    def _on_input_speech_started(self, event: Event) -> None:
        self.turn_open = True
        if self.speaker is not None:
            self.speaker.flush()  # barge-in: stop playing the agent at once

    def _on_transcript_user_delta(self, event: Event) -> None:
        self.display.live(f"You: {event.get('text', '')} …")

    def _on_input_speech_stopped(self, event: Event) -> None:
        self.turn_open = False

    def _on_transcript_user(self, event: Event) -> None:
        self.user_turns += 1
        self.unanswered += 1
        self.display.line(f"You: {event.get('text', '')}")

    # ------------------------------------------------------------------ agent
    def _on_reply_started(self, event: Event) -> None:
        self.reply_open = True
        self.followups_due = max(0, self.followups_due - 1)
        self._agent_text = ""

    def _on_reply_audio(self, event: Event) -> None:
        pcm = base64.b64decode(event.get("data") or "")
        if self.recorder is not None:
            self.recorder.add(pcm)
        if self.speaker is not None:
            self.speaker.play(pcm)

    def _on_transcript_agent_delta(self, event: Event) -> None:
        self._agent_text += str(event.get("delta", ""))
        self.display.live(f"Agent: {self._agent_text}")

    def _on_transcript_agent(self, event: Event) -> None:
        text = event.get("text", "")
        if text or event.get("interrupted"):
            mark = " [interrupted]" if event.get("interrupted") else ""
            self.display.line(f"Agent: {text}{mark}")

    def _on_reply_error(self, event: Event) -> None:
        self.reply_errors += 1
        self.display.note(f"Agent error: {event.get('message')} ({event.get('code')})")

    def _on_reply_done(self, event: Event) -> None:
        self.reply_open = False
        self.replies_done += 1
        self.unanswered = max(0, self.unanswered - 1)
        if self.exit_after_reply is not None and self.replies_done >= self.exit_after_reply:
            self.finished.set()

    # ------------------------------------------------------------------ tools
    def _on_tool_call(self, event: Event) -> None:
        name = str(event.get("name"))
        arguments = event.get("arguments") or {}
        self.display.line(f"Tool call: {name} {json.dumps(arguments, ensure_ascii=False)}")
        func = self.tools.get(name)
        if func is None:
            self.display.note(f"No local function for tool '{name}': not answered")
            return
        task = asyncio.create_task(self._answer(name, func, str(event.get("call_id")), arguments))
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _answer(
        self, name: str, func: ToolFunction, call_id: str, arguments: dict[str, Any]
    ) -> None:
        result, is_error = await run_tool(func, arguments)
        label = "Tool error" if is_error else "Tool result"
        self.display.line(f"{label}: {name} -> {result}")
        if self.client is not None:
            self.followups_due += 1
            await self.client.send_tool_result(call_id, result, is_error=is_error)
        self.activity.set()

    async def wait_quiet(self, expect_greeting: bool) -> None:
        """Wait until no turn, reply or tool answer is under way and nothing happened for a
        moment (and the greeting, if any, has been spoken)."""
        while True:
            self.activity.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.activity.wait(), QUIET_SECONDS)
                continue
            greeting_due = expect_greeting and self.replies_done == 0
            if not self.busy and self.unanswered == 0 and not greeting_due:
                return

    async def wait_answered(self) -> bool:
        """After the input ends: wait until every user turn is answered and all is quiet.

        ``False`` when nothing happens for :data:`NO_REPLY_SECONDS` without an answer.
        """
        idle_since = asyncio.get_running_loop().time()
        while True:
            self.activity.clear()
            answered = self.user_turns > 0 and self.unanswered == 0
            timeout = IDLE_SECONDS if answered else 0.25
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.activity.wait(), timeout)
                idle_since = asyncio.get_running_loop().time()
                continue
            if self.busy:
                idle_since = asyncio.get_running_loop().time()
                continue
            if answered:
                return True
            if asyncio.get_running_loop().time() - idle_since > NO_REPLY_SECONDS:
                return False


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vocalis talk``; returns the exit code."""
    options = TalkOptions.from_args(args)
    try:
        return asyncio.run(talk(options))
    except UsageError as exc:
        print(f"vocalis talk: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def talk(options: TalkOptions, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one session as ``options`` say; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    tools, input_pcm, sd = _prepare(options)
    display = Display(out, err, live=out.isatty())
    recorder = WavRecorder() if options.output else None
    speaker = Speaker(sd) if sd is not None and input_pcm is None and not options.say else None
    conv = Conversation(display, tools, recorder, speaker, options.exit_after_reply)
    client = VoiceAgentClient(
        options.url,
        api_key=options.api_key,
        token=options.token,
        session=options.session(tools),
        on_event=conv.on_event,
    )
    conv.client = client
    try:
        await client.connect()
    except SessionError as exc:
        display.note(f"Error: {exc}")
        return EXIT_SESSION_ERROR
    except ConnectionLost as exc:
        display.note(f"Error: {exc}")
        return EXIT_CONNECTION
    try:
        return _with_errors(await _converse(options, client, conv, input_pcm, sd), conv)
    finally:
        await client.end()
        if speaker is not None:
            speaker.close()
        if recorder is not None and options.output:
            recorder.write(options.output)
            display.note(f"Wrote {recorder.seconds:.2f} s of agent audio to {options.output}")


def _prepare(options: TalkOptions) -> tuple[dict[str, ToolFunction], bytes | None, Any]:
    """Load tools and input audio, find the audio devices; :class:`UsageError` on failure."""
    if options.agent_id and (
        options.voice or options.system_prompt or options.greeting or options.tools
    ):
        raise UsageError(
            "--agent-id cannot be combined with --voice, --system-prompt, "
            "--greeting or --tools (a stored agent brings its own)"
        )
    if options.text and (options.agent_id or options.voice or options.input or options.output):
        raise UsageError(
            "--text cannot be combined with --agent-id, --voice, --input or --output "
            "(a text session neither hears nor speaks)"
        )
    if not 20 <= options.chunk_ms <= 100:
        raise UsageError("--chunk-ms must be between 20 and 100")
    tools: dict[str, ToolFunction] = {}
    for spec in options.tools:
        try:
            tools.update(load_tools(spec))
        except Exception as exc:
            raise UsageError(f"cannot load tools {spec!r}: {exc}") from exc
    input_pcm = None
    if options.input:
        try:
            input_pcm = wav_to_pcm16(options.input)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {options.input}: {exc}") from exc
    sd = None
    if input_pcm is None and not options.say and not options.text:
        sd = sounddevice_module()
        if sd is None:
            raise UsageError(
                "no microphone: install the optional sounddevice package "
                "(pip install sounddevice; needs PortAudio) or pass --input file.wav"
            )
    return tools, input_pcm, sd


async def _converse(
    options: TalkOptions,
    client: VoiceAgentClient,
    conv: Conversation,
    input_pcm: bytes | None,
    sd: Any,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    scripted = input_pcm is not None or bool(options.say)
    timeout = options.timeout
    if timeout is None and scripted:
        seconds = len(input_pcm) / (SAMPLE_RATE * 2) if input_pcm else 0.0
        timeout = seconds + DEFAULT_REPLY_WAIT
    sender = asyncio.create_task(_send_input(options, client, conv, input_pcm, sd))
    waiters = {
        asyncio.create_task(conv.finished.wait()): "finished",
        asyncio.create_task(stop.wait()): "stopped",
        asyncio.create_task(client.wait_closed()): "closed",
        sender: "answered",
    }
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        for task in waiters:
            task.cancel()
    if not done:
        conv.display.note(f"No reply within {timeout:.0f} s")
        return EXIT_NO_REPLY
    task = done.pop()
    outcome = waiters[task]
    if outcome == "closed":
        return _closed_code(task, conv)
    if outcome == "answered" and not task.cancelled() and task.result() is False:
        conv.display.note("No reply: the server detected no speech, or answered nothing")
        return EXIT_NO_REPLY
    return EXIT_OK


def _with_errors(code: int, conv: Conversation) -> int:
    """A session that otherwise went well still fails when the server reported an error."""
    if code not in (EXIT_OK, EXIT_NO_REPLY):
        return code
    if conv.session_errors:
        return EXIT_SESSION_ERROR
    if conv.reply_errors:
        return EXIT_REPLY_ERROR
    return code


def _closed_code(task: asyncio.Task[Any], conv: Conversation) -> int:
    error = task.exception()
    if isinstance(error, SessionError):
        return EXIT_SESSION_ERROR
    if error is not None:
        conv.display.note(f"Error: {error}")
        return EXIT_CONNECTION
    ended = task.result() or {}
    return EXIT_SESSION_ERROR if ended.get("reason") == "error" else EXIT_OK


async def _send_input(
    options: TalkOptions,
    client: VoiceAgentClient,
    conv: Conversation,
    input_pcm: bytes | None,
    sd: Any,
) -> bool:
    """Speak the input; for scripted input return whether it was answered (never returns for a
    microphone)."""
    for text in options.say:
        await _type(options, client, conv, text)
    if options.text and not options.say:
        await _type_from_stdin(options, client, conv)
    if input_pcm is None and sd is not None:
        await client.stream_audio(Microphone(sd, options.chunk_ms).chunks())
        return True
    silence: asyncio.Task[None] | None = None
    if input_pcm is not None:
        await client.stream_audio(input_pcm, chunk_ms=options.chunk_ms)
        silence = asyncio.create_task(client.stream_audio(_silence(options.chunk_ms)))
    try:
        if options.exit_after_reply is not None:
            await asyncio.Event().wait()  # the reply count decides when to stop
        return await conv.wait_answered()
    finally:
        if silence is not None:
            silence.cancel()


async def _type(
    options: TalkOptions, client: VoiceAgentClient, conv: Conversation, text: str
) -> None:
    """One typed turn: a user message and a reply request, once the agent is quiet."""
    await conv.wait_quiet(expect_greeting=bool(options.greeting))
    conv.display.line(f"You: {text}")
    conv.unanswered += 1
    conv.user_turns += 1
    await client.send_message(text)
    await client.create_reply()


async def _type_from_stdin(
    options: TalkOptions, client: VoiceAgentClient, conv: Conversation
) -> None:
    """``--text`` without ``--say``: each line on stdin is a turn, until end of input."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip():
            await _type(options, client, conv, line.strip())


async def _silence(chunk_ms: int) -> AsyncIterator[bytes]:
    """Endless real-time silence, so the server hears the speaker stop (trailing silence)."""
    loop = asyncio.get_running_loop()
    chunk = silence_pcm16(chunk_ms)
    start = loop.time()
    index = 0
    while True:
        delay = start + index * chunk_ms / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield chunk
        index += 1
