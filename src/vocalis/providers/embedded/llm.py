"""Qwen2.5-Coder-0.5B-Instruct (GGUF) through xllamacpp, llama.cpp's server in-process.

Why xllamacpp: it is a prebuilt wheel, whereas llama-cpp-python has only an sdist that takes
about 11 minutes to compile on 2 cores. The prebuilt wheel targets AVX2; ``make`` rebuilds it once
for the machine's CPU (``scripts/native-llm.sh``: prompt evaluation ~1.6x faster with AVX-512),
and :func:`cpu_features` says which build is loaded. The weights are served re-encoded for
llama.cpp's repacked kernels (``requantize.py``). xllamacpp drives llama.cpp's server loop, so
it applies the model's jinja chat template (with ``tools``) and keeps the KV cache of the previous
request (``cache_prompt``): a new turn only evaluates the tokens after the shared prefix.

The server also opens an HTTP listener; it is bound to 127.0.0.1 on a random port and guarded by
a random API key that nobody learns, so only in-process calls reach the model.

Tool calls: the model writes them as text (often bare JSON, which llama.cpp's own parser does
not recognise), so text is passed through :class:`ToolCallHoldback` and parsed at the end with
:func:`parse_tool_calls`. Calls to tools the request did not offer are dropped, and so are exact
repeats of a call already made (and answered) since the user's last message. If the reply was
nothing but such a dropped call, the request is run once more without tools so the user still
hears an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import xllamacpp

from vocalis.providers.base import (
    ChatMessage,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextDelta,
    ToolCallRequest,
)
from vocalis.providers.chat_format import message_dict, tool_dicts
from vocalis.providers.continuation import may_continue, steps_aside
from vocalis.providers.embedded._threads import Cancelled, ThreadStream
from vocalis.providers.scheduling import Priority
from vocalis.providers.toolcall_parsing import (
    ToolCallHoldback,
    parse_tool_calls,
    strip_call_markup,
)
from vocalis.providers.workers import FIRST_WORDS, MAX_HOLD_S, SlotGate

log = logging.getLogger(__name__)

#: Generation budget while a tool call is being written (the spoken cap does not apply to it).
TOOL_CALL_MAX_TOKENS = 256
#: Chunks a reply leaves untaken when it has stopped reading to synthesise: its first piece is
#: then out of the model (the reply reads every chunk as it comes while it gathers a piece).
FIRST_PIECE_BACKLOG = 2

_SAMPLING: dict[str, Any] = {
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 40,
    "repeat_penalty": 1.1,
    "seed": 7,
}


def _call_key(call: ToolCallRequest) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True)


def _calls_this_turn(messages: tuple[ChatMessage, ...]) -> set[str]:
    """Calls already made since the last user message. The 0.5B model tends to repeat a call
    after reading its result; a repeat is treated like a call to an unknown tool."""
    made: set[str] = set()
    for message in reversed(messages):
        if message.role == "user":
            break
        made.update(_call_key(call) for call in message.tool_calls)
    return made


def _without_tool_syntax(messages: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    """The conversation with tool calls dropped and tool results turned into user notes."""
    plain: list[ChatMessage] = []
    for message in messages:
        if message.role == "tool":
            note = f"(Result of {message.name or 'the tool'}: {message.content})"
            plain.append(ChatMessage(role="user", content=note))
        elif message.tool_calls:
            if message.content.strip():
                plain.append(ChatMessage(role="assistant", content=message.content))
        else:
            plain.append(message)
    return tuple(plain)


class _Chunk:
    """One streamed piece of the model's output."""

    __slots__ = ("native_calls", "text")

    def __init__(self, text: str = "", native_calls: list[dict[str, Any]] | None = None):
        self.text = text
        self.native_calls = native_calls or []


def cpu_features() -> str:
    """The CPU features the loaded llama.cpp build uses ("AVX2 AVX512 AVX512_VNNI ..."): whether
    the native build (scripts/native-llm.sh) or the portable prebuilt wheel is running."""
    info = xllamacpp.get_system_info()
    found = re.findall(r"\b([A-Z][A-Z0-9_]*) = 1\b", info)
    return " ".join(name for name in found if name.startswith(("AVX", "AMX", "FMA", "F16C")))


class QwenLLM:
    """Streaming chat with tools on the embedded model, shared by every session of the node.

    llama.cpp runs ``parallel`` sequences at once in one model (its slots, with continuous
    batching: one decode step advances every active sequence, which costs little more than
    advancing one). Each slot keeps its own KV cache of ``context`` tokens, and llama.cpp gives a
    request the slot whose cached prompt shares the longest prefix with it, so each conversation
    tends to keep its own cache. A :class:`SlotGate` in front keeps at most ``parallel`` requests
    inside and gives a freed slot to a reply before a background prefill; a waiting request holds
    no thread.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 1,
        batch_threads: int = 2,
        context: int = 4096,
        poll: int = 50,
        pause_after: int = 0,
        parallel: int = 1,
        cache_ram_mib: int = 0,
    ) -> None:
        params = xllamacpp.CommonParams()
        params.cpuparams.poll = poll
        params.cpuparams_batch.poll = poll
        # Chunks a reply may leave untaken before its request is stopped (and continued once
        # taken; see _generate). 0: generate every request to its end.
        self._pause_after = pause_after
        params.model.path = str(model_path)
        params.n_ctx = context * parallel  # split evenly: each slot holds `context` tokens
        params.n_parallel = parallel
        # One decode step takes every generating slot's next token and as much of a new prompt
        # as fits n_batch (2048), so a prompt evaluated beside replies stalls them for its whole
        # length. Measured and not done: chunked prefill, n_batch 32 (4 callers at once,
        # bench_load --callers 4 --burst 4 --turns 4, 4 rows each way alternating, 64 turns):
        # v2v P50 1.82 / P95 3.27 s against 1.67 / 2.82 s; each new turn's first token waits
        # for the replies' steps in between.
        params.cont_batching = True
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = batch_threads
        params.use_jinja = True
        params.cache_prompt = True
        # When a conversation's slot goes to another one, llama.cpp saves the evicted KV state
        # in host RAM (up to 8 GiB by default: unsized it lets the process grow by gigabytes)
        # so the conversation can come back without a new prefill. One slot per conversation
        # (max_sessions 4, 4 slots) does not make it idle: llama.cpp gives a request the idle
        # slot sharing the longest prefix with it, every conversation shares the system
        # prompt, and a request whose own slot is still busy (a reply stopped to be
        # continued, a dropped speculation, both freed at their next token) takes another
        # conversation's slot, whose history its next turn then evaluates again at ~12 ms a
        # token on one thread: bench_load's slowest turn (4 callers) had its first TTS audio
        # 3.1-7.0 s after its first LLM token in 4 of 8 rows with no cache, 0.3-1.4 s in the 4
        # rows with it. 4 callers at once (bench_load, two rows each, back to back, with a
        # synthesis bound then in the tree, since removed): cache 0 v2v P50
        # 1.62 / 1.76 s, P95 3.36 / 8.36 s; 256 MiB 1.26 / 1.32 s, P95 2.11 / 1.82 s. Pinning
        # each request to a slot of our choosing (``id_slot``) instead measured 1.48 / 1.33 s,
        # P95 2.82 / 4.66 s: a pinned request skips llama.cpp's cache lookup.
        params.cache_ram_mib = cache_ram_mib
        params.port = 0  # any free port, on the default 127.0.0.1
        params.api_keys = [secrets.token_urlsafe(32)]
        params.verbosity = -1
        self._server = xllamacpp.Server(params)
        self.model_name = model_path.name
        self.gate = SlotGate("llm", parallel)

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        allowed = {tool.name for tool in request.tools}
        holdback = ToolCallHoldback()
        native: dict[int, dict[str, str]] = {}
        spoke = False
        first = self._generate(request, with_tools=bool(request.tools), reply=True)
        async for chunk in self._gated(first, Priority.FIRST_AUDIO):
            for native_call in chunk.native_calls:
                slot = native.setdefault(
                    int(native_call.get("index", 0)), {"name": "", "arguments": ""}
                )
                function = native_call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            if not chunk.text:
                continue
            speak = holdback.feed(chunk.text)
            if speak:
                spoke = spoke or bool(speak.strip())
                yield TextDelta(speak)
        tail, held = holdback.finish()
        if tail:
            spoke = spoke or bool(tail.strip())
            yield TextDelta(tail)
        native_text = "".join(
            json.dumps({"name": c["name"], "arguments": c["arguments"] or "{}"})
            for c in native.values()
        )
        parsed = parse_tool_calls(native_text + held, allowed)
        repeated = _calls_this_turn(request.messages)
        calls = [c for c in parsed.calls if _call_key(c) not in repeated]
        if calls:
            for call in calls:
                yield ToolCallRequest(name=call.name, arguments=call.arguments)
            return
        if not parsed.had_call_syntax:
            text = strip_call_markup(held)
            if text:
                yield TextDelta(("" if not spoke else " ") + text)
            return
        if spoke:
            return
        # The whole reply was a dropped call: answer once more, without tools, from a history
        # where earlier tool exchanges are plain text (so the model has no call to imitate).
        retry = LLMRequest(
            messages=_without_tool_syntax(request.messages), max_tokens=request.max_tokens
        )
        holdback = ToolCallHoldback()
        async for chunk in self._gated(
            self._generate(retry, with_tools=False, reply=True), Priority.FIRST_AUDIO
        ):
            speak = holdback.feed(chunk.text)
            if speak:
                yield TextDelta(speak)
        tail, held = holdback.finish()
        text = (tail + " " + strip_call_markup(held)).strip() if held else tail
        if text:
            yield TextDelta(text)

    async def _gated(
        self, stream: ThreadStream[_Chunk], priority: Priority
    ) -> AsyncIterator[_Chunk]:
        """Iterate ``stream`` inside a slot: its thread starts only once a slot is free, and
        the slot is free again only once that thread has left llama.cpp (a cancelled reply's
        request runs on until its next token), so llama.cpp never holds more requests than
        slots."""
        await self.gate.acquire(priority)
        loop = asyncio.get_running_loop()

        def release() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for a slot
                loop.call_soon_threadsafe(self.gate.release)

        stream.when_finished(release)
        async for chunk in stream:
            yield chunk

    def _generate(
        self,
        request: LLMRequest,
        *,
        with_tools: bool,
        max_tokens: int | None = None,
        reply: bool = False,
    ) -> ThreadStream[_Chunk]:
        """The model's output for ``request``, generated only while the reply takes it.

        llama.cpp decodes a request to its end whether or not anyone reads the tokens (blocking
        in the chunk callback stalls the delivery, not the decoding: measured, the process
        stays at 199 % CPU), and a reply that is synthesising speech reads nothing. So when
        the reply has left ``pause_after`` chunks untaken, the request is stopped, and once
        the reply has taken them it is continued: the same messages plus the text so far as
        the assistant's unfinished message, which llama.cpp's template continues (assistant
        prefill) from its cached prefix (~30-60 ms). The cores meanwhile go to speech
        synthesis and to other sessions' transcripts (Piper's first piece: 80 ms alone, 200-225
        ms while the model decodes).

        A ``reply`` request also counts in :data:`FIRST_WORDS` until its reply takes the first
        piece away to be spoken (it leaves :data:`FIRST_PIECE_BACKLOG` chunks untaken), and
        once past that it steps aside while other replies wait for theirs: it stops, holds
        for up to :data:`MAX_HOLD_S` (once per spell of waiting replies), and continues.

        Measured and not done: a reply whose own listener had under 1.5 s of audio left (its
        later pieces' ``NEXT_AUDIO``) not stepping aside. 4 callers at once (``bench_load
        --callers 4 --burst 4 --turns 4``, 2 runs each way alternating, 64 turns each,
        ``--pool``, 2026-12-04): replies ran dry 6.2 times / 1.6 s a row against 7.2 / 2.3 s,
        but v2v P50 1.86 / P95 2.93 s against 1.81 / 2.68 s (the first piece's synthesis P95
        619 vs 388 ms): the other callers' first words paid for it.
        """
        budget = max_tokens
        if budget is None:
            budget = (
                max(request.max_tokens, TOOL_CALL_MAX_TOKENS) if with_tools else request.max_tokens
            )
        messages = [message_dict(m) for m in request.messages]
        spoken_cap = request.max_tokens
        pause_after = self._pause_after

        def body(written: str, remaining: int) -> dict[str, Any]:
            sent = [*messages, {"role": "assistant", "content": written}] if written else messages
            out: dict[str, Any] = {
                "messages": sent,
                "stream": True,
                "cache_prompt": True,
                "max_tokens": remaining,
                **_SAMPLING,
            }
            if with_tools:
                out["tools"] = tool_dicts(request)
            return out

        def produce(emit: Callable[[_Chunk], None], cancelled: Cancelled) -> None:
            holdback = ToolCallHoldback()
            spoken_tokens = 0
            generated = 0
            written = ""  # all text so far: the prefix a continuation starts from
            calls_seen = False
            paused = False  # the latest request was stopped to be continued
            aside = False  # ... because other replies wait for their first piece
            piece_out = not reply  # the reply took its first piece (or this is no reply)
            held_spell = -1  # the FIRST_WORDS spell this request last stepped aside in
            errors: list[str] = []
            broke: list[Exception] = []  # raised inside on_chunk: kept for its traceback

            def on_chunk(data: Any) -> bool:
                # llama.cpp's server stops a request whose callback raises and says nothing, so
                # a bug here ended replies after one word with no error (found in a benchmark
                # run): the exception is kept and raised as the request's error instead
                try:
                    return take(data)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    broke.append(exc)
                    return True

            def take(data: Any) -> bool:
                nonlocal spoken_tokens, generated, written, calls_seen, paused, aside, piece_out
                nonlocal held_spell
                if cancelled.is_set():
                    return True
                if not isinstance(data, dict) or "choices" not in data:
                    errors.append(json.dumps(data)[:500])
                    return True
                timings = data.get("timings")
                if isinstance(timings, dict):
                    # llama.cpp's own account of the request: a first token that came late
                    # under load shows here as a prompt evaluated again (prompt_n >> the new
                    # message) or as slow evaluation beside other slots
                    log.debug(
                        "llm request: %d prompt tokens evaluated (%d from cache) in %.0f ms, "
                        "%d generated in %.0f ms",
                        timings.get("prompt_n", -1),
                        timings.get("cache_n", -1),
                        timings.get("prompt_ms", -1.0),
                        timings.get("predicted_n", -1),
                        timings.get("predicted_ms", -1.0),
                    )
                choices = data["choices"] or [{}]
                delta = choices[0].get("delta") or {}
                text = delta.get("content") or ""
                calls = delta.get("tool_calls") or []
                if not (text or calls):
                    return False
                generated += 1
                written += text
                calls_seen = calls_seen or bool(calls)
                emit(_Chunk(text, calls))
                if text and not holdback.holding:
                    holdback.feed(text)
                    if not holdback.holding:
                        spoken_tokens += 1
                        if spoken_tokens >= spoken_cap:
                            return True  # the spoken reply reached request.max_tokens
                backlog = stream.backlog
                if not piece_out and backlog >= FIRST_PIECE_BACKLOG:
                    piece_out = True
                    first_piece_taken()
                continuable = may_continue(written, holding=holdback.holding, calls=calls_seen)
                paused = pause_after > 0 and backlog >= pause_after and continuable
                aside = not paused and steps_aside(
                    continuable=continuable,
                    first_piece_out=piece_out,
                    replies_waiting=bool(FIRST_WORDS),
                    stepped_aside_this_spell=held_spell == FIRST_WORDS.spell,
                )
                if aside:
                    held_spell = FIRST_WORDS.spell
                return paused or aside

            waiting = FIRST_WORDS.awaited() if reply else contextlib.nullcontext(lambda: None)
            with waiting as first_piece_taken:
                while generated < budget:
                    paused = aside = False
                    try:
                        self._server.handle_chat_completions(
                            body(written, budget - generated), on_chunk
                        )
                    except Exception as exc:
                        raise LLMError(f"local model failed: {exc}", retryable=True) from exc
                    if errors:
                        cause = broke[0] if broke else None
                        raise LLMError(
                            f"local model failed: {errors[0]}", retryable=True
                        ) from cause
                    if spoken_tokens >= spoken_cap or cancelled.is_set():
                        return
                    if aside:
                        FIRST_WORDS.hold(MAX_HOLD_S, cancelled)
                    elif not paused or not stream.wait_taken():
                        return

        stream: ThreadStream[_Chunk] = ThreadStream(produce, name="qwen-llm")
        return stream

    async def prefill(self, request: LLMRequest) -> None:
        """Evaluate a prompt into the KV cache (one token generated, discarded): a session's
        system prompt and tools are then already cached when its first turn arrives, and the
        words of a turn still being spoken when it ends (``session/prompt_warming.py``)."""
        stream = self._generate(request, with_tools=bool(request.tools), max_tokens=1)
        async for _ in self._gated(stream, Priority.BACKGROUND):
            pass

    async def warm(self, request: LLMRequest) -> bool:
        """:meth:`prefill`, but only while the model is otherwise idle; False if skipped.

        For the words of a turn still being spoken (``session/prompt_warming.py``): evaluated
        while nothing else runs they are free, but llama.cpp evaluates a prompt in the same
        batches as the other slots' tokens (~12 ms a token on one thread), so a warm-up beside
        another session's reply makes that reply's first words late (measured with 4 callers:
        first token 0.2 s sooner, first audio 0.2-0.6 s later).

        Measured and not done (4 callers at once, ``bench_load --callers 4 --burst 4``, one
        run each way, 2 rows each, AVX2-only host): warming whenever no reply waited for its
        first piece and a slot was free made turns wait far longer, v2v P50 2.78 / 2.69 s and
        P95 5.98 / 7.32 s against 2.48 / 1.90 and 3.90 / 2.82 s; the slowest turns' first
        token came 4.4-5.1 s after the end of speech (1.4-1.5 s without). A warm-up cannot be
        stopped once a reply starts waiting, and it competes for slots and cached prefixes.
        """
        if self.gate.busy:
            return False
        await self.prefill(request)
        return True

    async def warmup(self) -> None:
        request = LLMRequest(messages=(ChatMessage(role="user", content="Hi"),), max_tokens=1)
        async for _ in self.stream(request):
            pass

    async def aclose(self) -> None:
        self.gate.close()
