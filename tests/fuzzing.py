"""Property-based fuzzing of the wire contract (issue #13): strategies and the oracle.

Strategies draw client frames (contract §7) and REST bodies (§17) in three flavours: *valid*
(the server must accept them), *near-valid* (one field wrong: a type, a range, an enum, a
missing or extra key) and *garbage* (bad JSON, odd unicode, huge strings, bad base64). Each
frame travels with what the contract allows as its answer, so a test can check every
``session.error`` against the catalogue of §16.1 (exact code, message and ``param``) and every
close code against §16.2.

The oracle is written from the contract, not from the server's code: the shapes of §7 are
restated here (:data:`EVENT_SHAPES`), so a parser that drifts from the contract disagrees.

Profiles (``HYPOTHESIS_PROFILE``): ``default`` runs a few hundred cases in seconds inside the
normal suite; ``fuzz`` is the dedicated run (``HYPOTHESIS_PROFILE=fuzz pytest -m fuzz``),
over 10 000 cases (frames and requests, counted in the terminal summary).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from vocalis.protocol.voices import LANGUAGE_CODES

# ------------------------------------------------------------------------------ profiles
_SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=_SUPPRESS, derandomize=True
)
settings.register_profile(
    "fuzz", max_examples=2500, deadline=None, suppress_health_check=_SUPPRESS, print_blob=True
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
# Loaded explicitly: Hypothesis switches to its own ``ci`` profile when it sees a CI environment
# (``CI=true``), which would drop the suppressed health checks above and fail the fixtures.
settings.load_profile(PROFILE)


def examples(default: int, fuzz: int) -> settings:
    """Per-test example counts: ``default`` in the normal suite, ``fuzz`` in the dedicated run."""
    return settings(max_examples=fuzz if PROFILE == "fuzz" else default)


@dataclass
class Counter:
    """Cases (frames or requests) sent, printed at the end of a dedicated run."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


CASES = Counter()

# ---------------------------------------------------------------------- the catalogue (§16.1)
VOICES_RE = r"[a-z, ]+"
_P = r"(?P<param>[^']+)"
# (code, exact-message regex, param rule): param rule "null", "fixed:<x>" or "group" (= the
# quoted path of the message).
CATALOGUE: list[tuple[str, str, str]] = [
    ("unauthorized", r"Authentication failed", "null"),
    ("invalid_format", r"Invalid JSON format\.", "null"),
    ("invalid_format", r"Invalid message format", "null"),
    ("invalid_format", r"Unknown message type: .*", "null"),
    ("invalid_format", r"Invalid message format for type '[a-z.]+'", "null"),
    (
        "invalid_format",
        r"Message type '[a-z.]+' is not allowed before session\.ready; "
        r"send session\.update or session\.resume first",
        "null",
    ),
    ("invalid_format", r"Timed out waiting for session\.update or session\.resume", "null"),
    ("invalid_format", r"session\.resume is only allowed as the first message", "null"),
    ("invalid_format", r"Binary frames are not supported", "null"),
    ("invalid_format", r"Message too large", "null"),
    ("invalid_audio", r"Invalid audio data", "null"),
    (
        "audio_rate_violation",
        r"Audio sent faster than real time; excess audio was dropped",
        "null",
    ),
    ("invalid_value", r"Invalid voice '.*'\. Must be one of: " + VOICES_RE, "fixed:output.voice"),
    (
        "invalid_value",
        r"agent_id is mutually exclusive with other session fields",
        "fixed:agent_id",
    ),
    (
        "invalid_value",
        r"BYO LLM config is not allowed on session\.update; "
        r"define it on a stored agent via POST /v1/agents",
        "fixed:llm",
    ),
    (
        "invalid_value",
        r"HTTP tools are only supported on stored agents; define them via POST /v1/agents",
        r"re:tools\[\d+\]\.http",
    ),
    ("invalid_value", r"Unknown call_id '.*'", "fixed:call_id"),
    ("invalid_value", r"Unknown reply_id '.*'", "fixed:reply_id"),
    ("invalid_value", r"Too many queued replies", "null"),
    ("invalid_value", rf"'{_P}' must be .+", "group"),
    ("agent_not_found", r"Agent not found", "fixed:agent_id"),
    ("invalid_config", r"Agent configuration is invalid: .+", "fixed:agent_id"),
    (
        "agent_id_not_first",
        r"agent_id can only be set on the first session\.update",
        "fixed:agent_id",
    ),
    ("immutable_field", rf"'{_P}' cannot be changed after the first session\.update", "group"),
    ("invalid_webhook", rf"'{_P}' must be .+", "group"),
    ("session_not_found", r"Session not found or grace window has expired", "fixed:session_id"),
    ("session_forbidden", r"Credential is not allowed to resume this session", "fixed:session_id"),
    ("at_capacity", r"Server is at capacity; try again later", "null"),
]


def catalogue_problem(event: dict[str, Any]) -> str | None:
    """Why a ``session.error`` is not an entry of §16.1 (code, exact message, ``param``)."""
    code, message, param = event["code"], event["message"], event["param"]
    if code == "internal_error":
        return "internal_error"
    for c, pattern, rule in CATALOGUE:
        if c != code:
            continue
        match = re.fullmatch(pattern, message, re.DOTALL)
        if match is None:
            continue
        if rule == "null" and param is None:
            return None
        if rule.startswith("fixed:") and param == rule[6:]:
            return None
        if rule.startswith("re:") and param is not None and re.fullmatch(rule[3:], param):
            return None
        if rule == "group" and param == match.group("param"):
            if code == "invalid_webhook" and not param.startswith("webhook"):
                continue
            return None
    return f"not in the catalogue: {code} {message!r} param={param!r}"


# ------------------------------------------------------------------------------ answers
@dataclass(frozen=True)
class Expect:
    """What a frame may be answered with: errors (code, exact message or None = any catalogue
    message of that code) and whether the session stays open."""

    errors: frozenset[tuple[str, str | None]] = frozenset()
    close: int | None = None  # the server closes with this code after the answer
    may_close: bool = False  # a close with ``close`` is allowed but not required
    creates: bool = False  # a first session.update that may create the session
    must_create: bool = False
    required: tuple[str, str] | None = None  # this exact error must be among the answers

    def allows(self, code: str, message: str) -> bool:
        return (code, message) in self.errors or (code, None) in self.errors


NOTHING = Expect()


def exactly(code: str, message: str, close: int | None = None) -> Expect:
    return Expect(frozenset({(code, message)}), close=close, required=(code, message))


def invalid_fields(type_: str) -> Expect:
    return exactly("invalid_format", f"Invalid message format for type '{type_}'")


def not_before_ready(type_: str) -> Expect:
    return exactly(
        "invalid_format",
        f"Message type '{type_}' is not allowed before session.ready; "
        "send session.update or session.resume first",
    )


@dataclass(frozen=True)
class Frame:
    """One client text frame, its parsed form (if JSON) and its kind for the oracle."""

    text: str
    kind: str  # "garbage-json", "not-object", "unknown-type", "bad-shape", or the event type
    data: Any = None
    detail: str = ""  # "valid", "near", "bad-base64", ...

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.detail}" if self.detail else self.kind


# ------------------------------------------------------------------------------ basic values
ODD_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",  # no lone surrogates: those are bad JSON, drawn separately
        categories=("L", "M", "N", "P", "S", "Z", "C"),
    ),
    max_size=40,
)
HUGE = st.sampled_from([5_000, 40_000, 70_000, 300_000]).map(lambda n: "a" * n)
ANY_STRING = st.one_of(ODD_TEXT, HUGE, st.sampled_from(["", " ", "\u202e", "🙂" * 10, "\x00"]))
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 0.5, 1e308, -1e308, 2**63, 10_001, 30_001, 5_001, 100, 101]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_STRING)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, ODD_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(ODD_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def wrong_type(expected: str) -> st.SearchStrategy[Any]:
    """A JSON value that is not of the ``expected`` JSON type (string/object/bool/array)."""
    options: list[st.SearchStrategy[Any]] = [st.booleans(), NUMBERS]
    if expected != "string":
        options.append(ODD_TEXT)
    if expected != "object":
        options.append(st.dictionaries(ODD_TEXT, SCALARS, max_size=3))
    if expected != "array":
        options.append(st.lists(SCALARS, max_size=3))
    if expected == "bool":
        options = [NUMBERS, ODD_TEXT, st.lists(SCALARS, max_size=2)]
    return st.one_of(*options)


# ------------------------------------------------------------------------------ §7 shapes
# field -> (JSON type, required, nullable). "any" = any JSON value.
EVENT_SHAPES: dict[str, dict[str, tuple[str, bool, bool]]] = {
    "session.update": {"session": ("object", False, True)},
    "session.resume": {
        "session_id": ("string", True, False),
        "resume_token": ("string", False, True),
    },
    "input.audio": {"audio": ("string", True, False)},
    "tool.result": {
        "call_id": ("string", True, False),
        "result": ("any", True, True),
        "is_error": ("bool", False, True),
    },
    "reply.create": {"instructions": ("string", False, True)},
    "conversation.message": {"role": ("role", True, False), "content": ("string", True, False)},
    "reply.cancel": {"reply_id": ("string", False, True)},
    "session.end": {},
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "role":
        return value in ("user", "system")
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    raise AssertionError(kind)


def shape_ok(data: dict[str, Any]) -> bool:
    """Whether a known-type event has the fields §7 requires, each of the right JSON type."""
    for name, (kind, required, nullable) in EVENT_SHAPES[data["type"]].items():
        if name not in data:
            if required:
                return False
            continue
        value = data[name]
        if value is None and (nullable or kind == "any"):
            continue
        if not _type_ok(kind, value):
            return False
    return True


# ------------------------------------------------------------------------------ session objects
# Text sides (§6.8, `{"type":"text"}`) take no other field, and frames are drawn without knowing
# the session's first update, so a later valid `input`/`output` would be invalid for a text
# session: valid sessions do not draw text sides (tests/integration/test_ws_text_sessions.py
# covers them; near-valid ones still draw unknown types).
VOICE_IDS = ("ivy", "james", "alba", "claire", "mia", "pierre", "dmitri")
FORMATS = st.sampled_from(
    [
        {"encoding": "audio/pcm"},
        {"encoding": "audio/pcmu", "sample_rate": 8000},
        {"encoding": "audio/pcma"},
        {"encoding": "audio/pcm", "sample_rate": 24000},
    ]
).map(dict)  # a fresh dict per draw: near-valid strategies mutate what they draw
TOOL_NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)


@st.composite
def valid_tools(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(TOOL_NAMES, max_size=3, unique=True))
    tools = []
    for name in names:
        tool: dict[str, Any] = {"type": "function", "name": name}
        if draw(st.booleans()):
            tool["description"] = draw(ODD_TEXT)
        if draw(st.booleans()):
            props = draw(st.dictionaries(TOOL_NAMES, st.just({"type": "string"}), max_size=3))
            required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
            tool["parameters"] = {"type": "object", "properties": props, "required": required}
        if draw(st.booleans()):
            tool["execution_mode"] = draw(st.sampled_from(["interactive", "hold"]))
        if draw(st.booleans()):
            tool["timeout_seconds"] = draw(st.floats(min_value=1, max_value=300))
        tools.append(tool)
    return tools


@st.composite
def valid_turn_detection(draw: st.DrawFn, first: bool) -> dict[str, Any]:
    td: dict[str, Any] = {}
    if draw(st.booleans()):
        td["type"] = draw(st.sampled_from(["server_vad", "semantic_vad", None]))
    if draw(st.booleans()):
        td["vad_threshold"] = draw(st.floats(min_value=0, max_value=1))
    if first and draw(st.booleans()):
        # alone, min_silence must stay under every preset's max_silence (1500, §11.3); later
        # updates leave both alone, as they merge with whatever the first one set
        if draw(st.booleans()):
            lo = draw(st.integers(min_value=0, max_value=10_000))
            td["min_silence"] = lo
            td["max_silence"] = draw(st.integers(min_value=lo, max_value=30_000))
        else:
            td["min_silence"] = draw(st.integers(min_value=0, max_value=1_500))
    if draw(st.booleans()):
        td["interrupt_response"] = draw(st.booleans())
    if draw(st.booleans()):
        td["interruption_delay"] = draw(st.integers(min_value=0, max_value=5_000))
    if draw(st.booleans()):
        td["uninterruptible_turns"] = draw(
            st.lists(st.sampled_from(["greeting", "dtmf_prompt", "tool_refused_ask"]), max_size=3)
        )
    return td


@st.composite
def valid_input(draw: st.DrawFn, first: bool) -> dict[str, Any]:
    inp: dict[str, Any] = {}
    if draw(st.booleans()):
        inp["format"] = draw(FORMATS)
    if draw(st.booleans()):
        inp["keyterms"] = draw(st.lists(st.text("abc xyz", min_size=1, max_size=100), max_size=5))
    if draw(st.booleans()):
        inp["transcription_mode"] = draw(
            st.sampled_from(["min_latency", "balanced", "max_accuracy"])
        )
    if draw(st.booleans()):
        inp["transcription_prompt"] = draw(ODD_TEXT)
    if draw(st.booleans()):
        inp["language_codes"] = draw(st.lists(st.sampled_from(sorted(LANGUAGE_CODES)), max_size=3))
    if draw(st.booleans()):
        inp["voice_focus"] = draw(st.sampled_from(["near-field", "far-field"]))
    if draw(st.booleans()):
        inp["voice_focus_threshold"] = draw(st.floats(min_value=0, max_value=1))
    if draw(st.booleans()):
        inp["continuous_partials"] = draw(st.booleans())
    if draw(st.booleans()):
        inp["turn_detection"] = draw(valid_turn_detection(first))
    return inp


@st.composite
def valid_session(draw: st.DrawFn, first: bool) -> dict[str, Any]:
    """A ``session`` object the server must accept (on a first update if ``first``, else as a
    later update: only mutable fields)."""
    s: dict[str, Any] = {}
    if draw(st.booleans()):
        s["system_prompt"] = draw(st.one_of(ODD_TEXT, st.just("p" * 65_536)))
    if first and draw(st.booleans()):
        s["greeting"] = draw(st.one_of(st.none(), st.just(""), ODD_TEXT.map(lambda t: t[:2000])))
    if draw(st.booleans()):
        s["input"] = draw(valid_input(first))
    if draw(st.booleans()):
        if first:
            out: dict[str, Any] = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "voice": st.sampled_from(VOICE_IDS),
                        "format": FORMATS,
                        "volume": st.floats(min_value=0, max_value=100),
                    },
                )
            )
        else:
            out = {"volume": draw(st.integers(min_value=0, max_value=100))}
        s["output"] = out
    if draw(st.booleans()):
        s["tools"] = draw(valid_tools())
    if draw(st.booleans()):
        s["pre_connect_requests"] = draw(st.lists(st.just({"timeout_ms": 100}), max_size=2))
    if draw(st.booleans()):  # ignored keys, legacy keys
        s[draw(st.sampled_from(["tool_choice", "x-extra", "🙂"]))] = draw(SCALARS)
    return s


# Near-valid: one path set to a wrong value; the answer is then an invalid_value /
# invalid_format / immutable_field / invalid_webhook / agent_* error of the catalogue.
NEAR_PATHS: list[tuple[tuple[str, ...], st.SearchStrategy[Any]]] = [
    (("system_prompt",), st.one_of(HUGE.map(lambda s: s * 2), wrong_type("string"))),
    (("greeting",), st.one_of(st.just("g" * 2001), wrong_type("string"))),
    (("input",), wrong_type("object")),
    (("input", "type"), st.one_of(ANY_STRING, wrong_type("string"))),
    (("input", "format"), st.one_of(wrong_type("object"), st.just({"encoding": "audio/mp3"}))),
    (("input", "format", "sample_rate"), st.one_of(NUMBERS, wrong_type("string"))),
    (("input", "keyterms"), st.one_of(st.lists(ANY_STRING, max_size=120), wrong_type("array"))),
    (("input", "transcription_mode"), st.one_of(ANY_STRING, NUMBERS)),
    (("input", "transcription_prompt"), st.one_of(st.just("t" * 1751), NUMBERS)),
    (("input", "language_codes"), st.lists(ANY_STRING, max_size=3)),
    (("input", "voice_focus"), ANY_STRING),
    (("input", "voice_focus_threshold"), NUMBERS),
    (("input", "turn_detection"), wrong_type("object")),
    (("input", "turn_detection", "type"), ANY_STRING),
    (("input", "turn_detection", "vad_threshold"), NUMBERS),
    (("input", "turn_detection", "min_silence"), NUMBERS),
    (("input", "turn_detection", "max_silence"), NUMBERS),
    (("input", "turn_detection", "interruption_delay"), NUMBERS),
    (("input", "turn_detection", "interrupt_response"), wrong_type("bool")),
    (("input", "turn_detection", "uninterruptible_turns"), st.lists(ANY_STRING, max_size=3)),
    (("output",), wrong_type("object")),
    (("output", "type"), ANY_STRING),
    (("output", "voice"), st.one_of(ANY_STRING, st.sampled_from(["IVY", "ivy ", "x"]))),
    (("output", "format"), st.one_of(wrong_type("object"), st.just({"encoding": "pcm"}))),
    (("output", "volume"), NUMBERS),
    (("tools",), st.one_of(wrong_type("array"), st.lists(JSON, max_size=3))),
    (
        ("tools",),
        st.lists(
            st.fixed_dictionaries(
                {"name": st.one_of(ANY_STRING, st.just("dup"))},
                optional={
                    "type": ANY_STRING,
                    "parameters": JSON,
                    "execution_mode": ANY_STRING,
                    "timeout_seconds": NUMBERS,
                    "http": JSON,
                    "response_instructions": JSON,
                    "description": st.one_of(ANY_STRING, NUMBERS),
                },
            ),
            max_size=3,
        ),
    ),
    (("tools",), st.just([{"name": "t"}] * 65)),
    (("llm",), st.lists(JSON, max_size=2)),
    (("pre_connect_requests",), st.one_of(st.lists(JSON, max_size=3), wrong_type("array"))),
    (("webhook",), JSON),
    (
        ("webhook",),
        st.fixed_dictionaries(
            {},
            optional={
                "url": st.one_of(ANY_STRING, st.just("https://example.com/h")),
                "events": st.lists(st.one_of(ANY_STRING, st.just("session.started")), max_size=3),
                "secret": st.one_of(ANY_STRING, st.just("s" * 32)),
            },
        ),
    ),
    (("agent_id",), st.one_of(ANY_STRING, wrong_type("string"))),
    (("turn_detection",), st.one_of(JSON, st.just({"min_end_of_turn_silence_ms": -5}))),
]


@st.composite
def near_session(draw: st.DrawFn, first: bool) -> dict[str, Any]:
    s = copy.deepcopy(draw(valid_session(first)))  # drawn values may be shared constants
    path, values = draw(st.sampled_from(NEAR_PATHS))
    node = s
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = draw(values)
    return s


# ------------------------------------------------------------------------------ frames
def _frame(data: Any, kind: str, detail: str = "") -> Frame:
    return Frame(json.dumps(data, ensure_ascii=draw_ascii(data)), kind, data, detail)


def draw_ascii(data: Any) -> bool:
    return len(json.dumps(data)) % 2 == 0  # both escapings, chosen by the data itself


def pcm_b64(draw: st.DrawFn) -> str:
    n = draw(st.integers(min_value=0, max_value=4800))
    return base64.b64encode(draw(st.binary(min_size=n, max_size=n))).decode()


BAD_B64 = st.one_of(
    st.sampled_from(["%%%", "QUJD-", "A", "AB=", "====", "QUJD\n", "QUJ D", "🙂", "QQ==QQ=="]),
    ODD_TEXT.filter(lambda t: not _is_b64(t)),
)


def _is_b64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


@st.composite
def event_frames(draw: st.DrawFn, in_session: bool) -> Frame:
    """One frame of any kind, for a connection before (``in_session=False``) or after ready."""
    kind = draw(
        st.sampled_from(
            [
                "garbage",
                "not-object",
                "unknown-type",
                "mutated",
                "session.update",
                "session.update",
                "session.resume",
                "input.audio",
                "input.audio",
                "tool.result",
                "reply.create",
                "conversation.message",
                "reply.cancel",
            ]
        )
    )
    if kind == "garbage":
        text = draw(
            st.one_of(
                ODD_TEXT.filter(lambda t: not _is_json(t)),
                st.sampled_from(
                    [
                        "{",
                        '{"type":"session.update",',
                        "[" * 50_000,
                        '{"type":"x","n":' + "1" * 5_000 + "}",
                        '{"type":"reply.create","instructions":"\\ud800"}',
                        '{"type":"session.update","session":{"greeting":"\\udfff"}}',
                        '{"type":"input.audio","audio":NaN}',
                        '{"type":"reply.create"} trailing',
                    ]
                ),
            )
        )
        return Frame(text, "garbage-json")
    if kind == "not-object":
        data = draw(
            st.one_of(
                st.lists(JSON, max_size=3),
                SCALARS,
                st.dictionaries(ODD_TEXT.filter(lambda k: k != "type"), JSON, max_size=3),
                st.fixed_dictionaries({"type": wrong_type("string")}),
            )
        )
        return _frame(data, "not-object")
    if kind == "unknown-type":
        type_ = draw(
            st.one_of(
                ODD_TEXT.filter(lambda t: t not in EVENT_SHAPES),
                st.sampled_from(["error", "session.updated", "input.audio.append", "SESSION.END"]),
            )
        )
        return _frame(
            {"type": type_, **draw(st.dictionaries(ODD_TEXT, JSON, max_size=2))}, "unknown-type"
        )
    if kind == "mutated":
        type_ = draw(st.sampled_from(sorted(EVENT_SHAPES)))
        data = {"type": type_, **_valid_fields(draw, type_)}
        fields = EVENT_SHAPES[type_]
        op = draw(st.sampled_from(["drop", "retype", "extra", "null"]))
        if fields and op == "drop":
            data.pop(draw(st.sampled_from(sorted(fields))), None)
        elif fields and op == "retype":
            name = draw(st.sampled_from(sorted(fields)))
            data[name] = draw(wrong_type(fields[name][0] if fields[name][0] != "role" else "x"))
        elif fields and op == "null":
            data[draw(st.sampled_from(sorted(fields)))] = None
        else:
            data[draw(ODD_TEXT.filter(lambda k: k not in fields and k != "type"))] = draw(JSON)
        return _frame(data, type_, f"mutated-{op}")
    if kind == "session.update":
        flavour = draw(st.sampled_from(["valid", "near"]))
        make = valid_session if flavour == "valid" else near_session
        session = draw(make(first=not in_session))
        data = (
            {"type": kind, "session": session} if session or draw(st.booleans()) else {"type": kind}
        )
        return _frame(data, kind, flavour)
    return _frame({"type": kind, **_valid_fields(draw, kind, in_session)}, kind, "drawn")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _valid_fields(draw: st.DrawFn, type_: str, in_session: bool = True) -> dict[str, Any]:
    if type_ == "session.update":
        session = draw(
            st.one_of(valid_session(first=not in_session), near_session(first=not in_session))
        )
        return {"session": session} if session or draw(st.booleans()) else {}
    if type_ == "session.resume":
        sid = draw(st.one_of(st.just("sess_" + "0" * 32), ANY_STRING))
        return {"session_id": sid}
    if type_ == "input.audio":
        return {
            "audio": draw(st.one_of(st.builds(lambda: ""), BAD_B64, st.just(None)))
            if draw(st.integers(0, 2)) == 0
            else pcm_b64(draw)
        }
    if type_ == "tool.result":
        out: dict[str, Any] = {
            "call_id": draw(st.one_of(st.just("call_" + "1" * 32), ANY_STRING)),
            "result": draw(JSON),
        }
        if draw(st.booleans()):
            out["is_error"] = draw(st.booleans())
        return out
    if type_ == "reply.create":
        return draw(
            st.fixed_dictionaries(
                {}, optional={"instructions": st.one_of(ODD_TEXT, st.just("i" * 4097), HUGE)}
            )
        )
    if type_ == "conversation.message":
        return {
            "role": draw(st.sampled_from(["user", "system"])),
            "content": draw(st.one_of(ODD_TEXT, st.just("c" * 32_769))),
        }
    if type_ == "reply.cancel":
        return draw(
            st.fixed_dictionaries(
                {}, optional={"reply_id": st.one_of(st.just("resp_" + "2" * 32), ANY_STRING)}
            )
        )
    return {}


def expect_for(frame: Frame, in_session: bool) -> Expect:
    """What the contract allows as the answer to ``frame``."""
    if len(frame.text.encode("utf-8", "surrogatepass")) > 1024 * 1024:
        return exactly("invalid_format", "Message too large")
    if frame.kind == "garbage-json":
        try:
            data = json.loads(frame.text)
        except (ValueError, RecursionError):
            return exactly("invalid_format", "Invalid JSON format.")
        if "\\ud" in frame.text.lower():
            return exactly("invalid_format", "Invalid JSON format.")
        return _expect_data(data, in_session, "")
    return _expect_data(frame.data, in_session, frame.detail)


def _expect_data(data: Any, in_session: bool, detail: str) -> Expect:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return exactly("invalid_format", "Invalid message format")
    type_ = data["type"]
    if type_ not in EVENT_SHAPES:
        return exactly("invalid_format", f"Unknown message type: {type_}")
    if not shape_ok(data):
        return invalid_fields(type_)
    if type_ == "session.update":
        return _expect_update(first=not in_session, valid=detail == "valid")
    if not in_session:
        if type_ == "input.audio":
            return NOTHING
        if type_ == "session.resume":
            return exactly(
                "session_not_found", "Session not found or grace window has expired", close=1008
            )
        return not_before_ready(type_)
    if type_ == "session.resume":
        return exactly("invalid_format", "session.resume is only allowed as the first message")
    if type_ == "input.audio":
        if not _is_b64(data["audio"]):
            return exactly("invalid_audio", "Invalid audio data")
        return Expect(frozenset({("audio_rate_violation", None)}))
    if type_ == "tool.result":
        return exactly("invalid_value", f"Unknown call_id '{data['call_id']}'")
    if type_ == "reply.create":
        instructions = data.get("instructions")
        if instructions is not None and len(instructions) > 4096:
            return exactly("invalid_value", "'instructions' must be at most 4096 characters")
        return Expect(frozenset({("invalid_value", "Too many queued replies")}))
    if type_ == "conversation.message":
        if len(data["content"]) > 32_768:
            return exactly("invalid_value", "'content' must be at most 32768 characters")
        return NOTHING
    if type_ == "reply.cancel":
        reply_id = data.get("reply_id")
        if reply_id is None:
            return NOTHING
        return exactly("invalid_value", f"Unknown reply_id '{reply_id}'")
    if type_ == "session.end":
        return Expect(close=1000)
    raise AssertionError(type_)


UPDATE_CODES = frozenset(
    {
        "invalid_format",
        "invalid_value",
        "immutable_field",
        "invalid_webhook",
        "agent_id_not_first",
        "agent_not_found",
        "invalid_config",
    }
)


def _expect_update(first: bool, valid: bool) -> Expect:
    allowed = frozenset() if valid else frozenset((code, None) for code in UPDATE_CODES)
    if first:
        # invalid_format keeps the socket waiting; every other error closes 1008 (§7.1)
        return Expect(allowed, close=1008, may_close=not valid, creates=True, must_create=valid)
    return Expect(allowed)
