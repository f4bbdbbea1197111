"""Session configuration (contract §6): wire shape, validation with exact errors, merge and echo.

Validation has two phases, mirroring the error catalogue:

1. *Shape* — ``SessionIn`` parses the ``session`` object with strict JSON types; a wrong type or a
   missing required field is ``invalid_format`` (handled by the caller).
2. *Values* — :func:`validate_update` checks ranges, enums and tool schemas in the contract's
   order and raises ``invalid_value`` (and friends) with ``param`` set to the field's path.

The resolved state is :class:`SessionConfig`; it stores what the client set (``None`` = unset)
so that the echo shows client values verbatim and defaults only where §6.2/§6.4 say so.

Why one long module (~700 lines): §6 is one schema whose validation order, field paths and exact
messages must match the contract line by line; split across files, the order of the checks (which
decides which error a client sees first) would be scattered too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vocalis.protocol import errors
from vocalis.protocol.errors import ProtocolError
from vocalis.protocol.voices import LANGUAGE_CODES

ENCODING_RATES: dict[str, int] = {"audio/pcm": 24_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}
TRANSCRIPTION_PRESETS: dict[str, tuple[int, int]] = {
    "min_latency": (500, 1500),
    "balanced": (800, 2500),
    "max_accuracy": (1200, 3500),
}
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
WEBHOOK_EVENTS = ("session.started", "session.completed")
UNINTERRUPTIBLE_CLASSES = ("greeting", "dtmf_prompt", "tool_refused_ask")
DEFAULT_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "required": []}


# ------------------------------------------------------------------------------ wire shape (strict)
class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class FormatIn(_Strict):
    encoding: str | None = None
    sample_rate: int | None = None


class TurnDetectionIn(_Strict):
    type: str | None = None
    vad_threshold: float | None = None
    min_silence: int | None = None
    max_silence: int | None = None
    interrupt_response: bool | None = None
    interruption_delay: int | None = None
    uninterruptible_turns: list[str] | None = None


class InputIn(_Strict):
    type: str | None = None
    format: FormatIn | None = None
    keyterms: list[str] | None = None
    transcription_mode: str | None = None
    transcription_prompt: str | None = None
    language_codes: list[str] | None = None
    voice_focus: str | None = None
    voice_focus_threshold: float | None = None
    continuous_partials: bool | None = None
    turn_detection: TurnDetectionIn | None = None


class OutputIn(_Strict):
    type: str | None = None
    voice: str | None = None
    format: FormatIn | None = None
    volume: float | None = None


class ToolIn(_Strict):
    type: str | None = None
    name: str
    description: str | None = None
    parameters: Any = None
    execution_mode: str | None = None
    timeout_seconds: float | None = None
    http: Any = None
    response_instructions: Any = None
    dtmf_collected_arguments: Any = None
    session_update: Any = None
    deployment_id: Any = None
    image_tag: Any = None
    id: str | None = None


class LegacyTurnDetectionIn(_Strict):
    """Root-level ``session.turn_detection`` of the earlier protocol (Appendix A)."""

    speech_detection_threshold: float | None = None
    min_end_of_turn_silence_ms: int | None = None
    max_turn_silence_ms: int | None = None
    interrupt_response: bool | None = None
    min_interrupt_duration_ms: int | None = None


class SessionIn(_Strict):
    agent_id: str | None = None
    system_prompt: str | None = None
    greeting: str | None = None
    input: InputIn | None = None
    output: OutputIn | None = None
    tools: list[ToolIn] | None = None
    llm: list[Any] | None = None
    pre_connect_requests: list[Any] | None = None
    webhook: Any = None
    turn_detection: LegacyTurnDetectionIn | None = None

    def other_fields_set(self) -> bool:
        """Whether anything besides ``agent_id`` was given (non-null)."""
        data = self.model_dump(exclude_none=True)
        data.pop("agent_id", None)
        return bool(data)


# --------------------------------------------------------------------------------- resolved state
@dataclass(frozen=True)
class AudioFormat:
    encoding: str = "audio/pcm"

    @property
    def sample_rate(self) -> int:
        return ENCODING_RATES[self.encoding]

    def echo(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "sample_rate": self.sample_rate}


@dataclass(frozen=True)
class TurnDetection:
    """Client-set turn-detection fields (``None`` = default)."""

    type: str | None = None
    vad_threshold: float | None = None
    min_silence: int | None = None
    max_silence: int | None = None
    interrupt_response: bool | None = None
    interruption_delay: int | None = None
    uninterruptible_turns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HttpSpec:
    """An HTTP tool's endpoint (stored agents only); header values never leave the server."""

    url: str
    http_method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()

    def echo(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "http_method": self.http_method,
            "headers": [{"name": name} for name, _ in self.headers],
        }


@dataclass(frozen=True)
class ToolConfig:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMETERS))
    execution_mode: Literal["interactive", "hold"] = "interactive"
    timeout_seconds: float = 120
    response_instructions: dict[str, str] | None = None
    http: HttpSpec | None = None
    id: str | None = None  # stored-agent tools only
    extras: tuple[tuple[str, Any], ...] = ()  # echoed-only fields

    def echo(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out.update(
            {
                "type": "function",
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
                "timeout_seconds": _number(self.timeout_seconds),
                "execution_mode": self.execution_mode,
                "http": self.http.echo() if self.http else None,
                "response_instructions": self.response_instructions,
                "deployment_id": None,
                "session_update": None,
                "image_tag": None,
            }
        )
        for key, value in self.extras:
            out[key] = value
        return out


@dataclass(frozen=True)
class CustomLLM:
    """A stored agent's OpenAI-compatible model (§17.3.2); ``api_key`` is never echoed."""

    base_url: str
    model: str
    api_key: str | None = None
    reasoning_effort: str | None = None

    def echo(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "model": self.model,
            "reasoning_effort": self.reasoning_effort,
        }


@dataclass(frozen=True)
class SessionConfig:
    """The resolved configuration of one session; immutable, replaced on each update."""

    id: str
    default_system_prompt: str
    default_voice: str
    system_prompt: str | None = None
    greeting: str | None = None
    input_format: AudioFormat = AudioFormat()
    keyterms: tuple[str, ...] | None = None
    transcription_mode: str | None = None
    transcription_prompt: str | None = None
    language_codes: tuple[str, ...] | None = None
    voice_focus: str | None = None
    voice_focus_threshold: float | None = None
    continuous_partials: bool | None = None
    turn_detection: TurnDetection | None = None
    voice: str | None = None
    output_format: AudioFormat = AudioFormat()
    volume: float | None = None
    tools: tuple[ToolConfig, ...] = ()  # client tools
    agent_tools: tuple[ToolConfig, ...] = ()  # a stored agent's HTTP tools, always kept
    llm: tuple[CustomLLM, ...] = ()
    pre_connect_requests: tuple[Any, ...] = ()
    webhook: dict[str, Any] | None = None
    agent_id: str | None = None
    input_type: Literal["audio", "text"] = "audio"  # §6.8: text = no listening
    output_type: Literal["audio", "text"] = "audio"  # §6.8: text = no synthesis

    # --- effective values used by the engine
    @property
    def effective_system_prompt(self) -> str:
        return self.system_prompt if self.system_prompt is not None else self.default_system_prompt

    @property
    def effective_voice(self) -> str:
        return self.voice or self.default_voice

    @property
    def all_tools(self) -> tuple[ToolConfig, ...]:
        return self.agent_tools + self.tools

    def tool(self, name: str) -> ToolConfig | None:
        return next((t for t in self.all_tools if t.name == name), None)

    @property
    def silence_ms(self) -> tuple[int, int]:
        """Effective (min_silence, max_silence): explicit values win over the mode preset."""
        preset_min, preset_max = TRANSCRIPTION_PRESETS[self.transcription_mode or "balanced"]
        td = self.turn_detection or TurnDetection()
        lo = td.min_silence if td.min_silence is not None else preset_min
        hi = td.max_silence if td.max_silence is not None else preset_max
        return lo, hi

    @property
    def turn_type(self) -> str:
        td = self.turn_detection
        return (td.type if td and td.type else None) or "semantic_vad"

    @property
    def vad_threshold(self) -> float:
        td = self.turn_detection
        return td.vad_threshold if td and td.vad_threshold is not None else 0.5

    @property
    def interrupt_response(self) -> bool:
        td = self.turn_detection
        return td.interrupt_response if td and td.interrupt_response is not None else True

    @property
    def interruption_delay_ms(self) -> int:
        td = self.turn_detection
        return td.interruption_delay if td and td.interruption_delay is not None else 200

    @property
    def uninterruptible_turns(self) -> tuple[str, ...]:
        td = self.turn_detection
        return td.uninterruptible_turns if td and td.uninterruptible_turns is not None else ()

    # --- echo (§6.7)
    def echo(self) -> dict[str, Any]:
        out: dict[str, Any] = self._audio_echo()
        if self.input_type == "text":
            out["input"] = {"type": "text"}
        if self.output_type == "text":
            out["output"] = {"type": "text"}
        return out

    def _audio_echo(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "system_prompt": self.effective_system_prompt,
            "greeting": self.greeting,
            "input": {
                "type": "audio",
                "format": self.input_format.echo(),
                "keyterms": list(self.keyterms) if self.keyterms is not None else None,
                "turn_detection": self._turn_detection_echo(),
                "transcription_mode": self.transcription_mode,
                "transcription_prompt": self.transcription_prompt,
                "language_codes": (
                    list(self.language_codes) if self.language_codes is not None else None
                ),
                "voice_focus": self.voice_focus,
                "voice_focus_threshold": self.voice_focus_threshold,
                "continuous_partials": self.continuous_partials,
            },
            "output": {
                "type": "audio",
                "voice": self.effective_voice,
                "format": self.output_format.echo(),
                "volume": _number(self.volume) if self.volume is not None else None,
            },
            "tools": [t.echo() for t in self.all_tools],
            "llm": [m.echo() for m in self.llm],
            "pre_connect_requests": [pre_connect_echo(p) for p in self.pre_connect_requests],
        }
        if self.webhook is not None:
            out["webhook"] = {
                "url": self.webhook.get("url"),
                "events": self.webhook.get("events"),
            }
        return out

    def _turn_detection_echo(self) -> dict[str, Any] | None:
        td = self.turn_detection
        if td is None:
            return None
        lo, hi = self.silence_ms
        return {
            "type": td.type,
            "vad_threshold": td.vad_threshold if td.vad_threshold is not None else 0.5,
            "min_silence": lo,
            "max_silence": hi,
            "interrupt_response": self.interrupt_response,
            "interruption_delay": self.interruption_delay_ms,
            "uninterruptible_turns": list(self.uninterruptible_turns),
        }


def _number(value: float) -> float | int:
    """Echo whole numbers as integers (``100`` rather than ``100.0``)."""
    return int(value) if float(value).is_integer() else value


# ------------------------------------------------------------------------------------ validation
@dataclass(frozen=True)
class ValidationContext:
    catalog_ids: tuple[str, ...]
    allow_http_tools: bool = False  # stored agents only


def parse_session(raw: Any) -> SessionIn:
    """Phase 1: strict shape. Raises pydantic.ValidationError (→ ``invalid_format``)."""
    return SessionIn.model_validate(raw if raw is not None else {})


def validate_update(
    update: SessionIn,
    current: SessionConfig,
    ctx: ValidationContext,
    *,
    first: bool,
) -> SessionConfig:
    """Phase 2: check values in the contract's order and return the patched configuration.

    ``first`` selects first-update rules (everything settable) or later-update rules
    (mutability table of §6/§7.1). Errors are raised non-fatal; the caller makes first-update
    errors fatal. ``agent_id`` handling (exclusivity, lookup) happens before this call.
    """
    if not first and update.agent_id is not None:
        raise errors.agent_id_not_first()
    if update.llm:
        raise errors.inline_llm()
    webhook = _validate_webhook(update.webhook) if update.webhook is not None else None

    cfg = current
    if update.system_prompt is not None:
        _max_len("system_prompt", update.system_prompt, 65_536)
        cfg = replace(cfg, system_prompt=update.system_prompt)
    if update.greeting is not None:
        if first:
            _max_len("greeting", update.greeting, 2_000)
            cfg = replace(cfg, greeting=update.greeting or None)
        elif (update.greeting or None) != current.greeting:
            raise errors.immutable_field("greeting")
    cfg = _apply_input(cfg, update.input, update.turn_detection, first=first)
    cfg = _apply_output(cfg, update.output, ctx, first=first)
    if update.tools is not None:
        cfg = replace(cfg, tools=_validate_tools(update.tools, ctx, reserved=cfg.agent_tools))
    if update.pre_connect_requests is not None:
        cfg = replace(cfg, pre_connect_requests=_validate_pre_connect(update.pre_connect_requests))
    if webhook is not None:
        cfg = replace(cfg, webhook=webhook)
    return cfg


def _max_len(param: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise errors.invalid_value(param, f"at most {limit} characters")


def _one_of(param: str, value: str, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        raise errors.invalid_value(param, "one of: " + ", ".join(allowed))


def _between(param: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise errors.invalid_value(param, f"between {_fmt(lo)} and {_fmt(hi)}")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _format(param: str, fmt: FormatIn) -> AudioFormat:
    encoding = fmt.encoding if fmt.encoding is not None else "audio/pcm"
    _one_of(f"{param}.encoding", encoding, list(ENCODING_RATES))
    rate = ENCODING_RATES[encoding]
    if fmt.sample_rate is not None and fmt.sample_rate != rate:
        raise errors.invalid_value(f"{param}.sample_rate", f"{rate} for {encoding}")
    return AudioFormat(encoding)


def _apply_input(
    cfg: SessionConfig,
    inp: InputIn | None,
    legacy: LegacyTurnDetectionIn | None,
    *,
    first: bool,
) -> SessionConfig:
    changes: dict[str, Any] = {}
    td_in = _merge_legacy_turn_detection(inp.turn_detection if inp else None, legacy)
    if inp is not None and inp.type is not None:
        _one_of("input.type", inp.type, ["audio", "text"])
        if inp.type != cfg.input_type and not first:
            raise errors.immutable_field("input.type")
        changes["input_type"] = inp.type
    if (changes.get("input_type") or cfg.input_type) == "text":
        _only_type("input", inp or InputIn(), legacy)
    if inp is not None:
        if inp.format is not None:
            changes["input_format"] = _format("input.format", inp.format)
        if inp.keyterms is not None:
            if len(inp.keyterms) > 100:
                raise errors.invalid_value("input.keyterms", "at most 100 items")
            for i, term in enumerate(inp.keyterms):
                if not 1 <= len(term) <= 100:
                    raise errors.invalid_value(
                        f"input.keyterms[{i}]", "between 1 and 100 characters"
                    )
            changes["keyterms"] = tuple(inp.keyterms)
        if inp.transcription_mode is not None:
            _one_of("input.transcription_mode", inp.transcription_mode, list(TRANSCRIPTION_PRESETS))
            changes["transcription_mode"] = inp.transcription_mode
        if inp.transcription_prompt is not None:
            _max_len("input.transcription_prompt", inp.transcription_prompt, 1_750)
            changes["transcription_prompt"] = inp.transcription_prompt
        if inp.language_codes is not None:
            for i, code in enumerate(inp.language_codes):
                _one_of(f"input.language_codes[{i}]", code, LANGUAGE_CODES)
            changes["language_codes"] = tuple(inp.language_codes)
        if inp.voice_focus is not None:
            _one_of("input.voice_focus", inp.voice_focus, ["near-field", "far-field"])
            changes["voice_focus"] = inp.voice_focus
        if inp.voice_focus_threshold is not None:
            _between("input.voice_focus_threshold", inp.voice_focus_threshold, 0, 1)
            changes["voice_focus_threshold"] = inp.voice_focus_threshold
        if inp.continuous_partials is not None:
            changes["continuous_partials"] = inp.continuous_partials
    cfg = replace(cfg, **changes)
    if td_in is not None:
        cfg = replace(cfg, turn_detection=_merge_turn_detection(cfg, td_in))
    elif "transcription_mode" in changes and cfg.turn_detection is not None:
        _check_silence_order(cfg)
    return cfg


def _merge_legacy_turn_detection(
    td: TurnDetectionIn | None, legacy: LegacyTurnDetectionIn | None
) -> TurnDetectionIn | None:
    """Map Appendix A's root-level names; explicit ``input.turn_detection`` fields win."""
    if legacy is None:
        return td
    mapped = TurnDetectionIn(
        vad_threshold=legacy.speech_detection_threshold,
        min_silence=legacy.min_end_of_turn_silence_ms,
        max_silence=legacy.max_turn_silence_ms,
        interrupt_response=legacy.interrupt_response,
        interruption_delay=legacy.min_interrupt_duration_ms,
    )
    if td is None:
        return mapped
    explicit = td.model_dump(exclude_none=True)
    return mapped.model_copy(update=explicit)


def _merge_turn_detection(cfg: SessionConfig, td: TurnDetectionIn) -> TurnDetection:
    base = "input.turn_detection"
    if td.type is not None:
        _one_of(f"{base}.type", td.type, ["server_vad", "semantic_vad"])
    if td.vad_threshold is not None:
        _between(f"{base}.vad_threshold", td.vad_threshold, 0, 1)
    if td.min_silence is not None:
        _between(f"{base}.min_silence", td.min_silence, 0, 10_000)
    if td.max_silence is not None:
        _between(f"{base}.max_silence", td.max_silence, 0, 30_000)
    if td.interruption_delay is not None:
        _between(f"{base}.interruption_delay", td.interruption_delay, 0, 5_000)
    if td.uninterruptible_turns is not None:
        for i, cls in enumerate(td.uninterruptible_turns):
            _one_of(f"{base}.uninterruptible_turns[{i}]", cls, UNINTERRUPTIBLE_CLASSES)
    current = cfg.turn_detection or TurnDetection()
    patch = {k: v for k, v in td.model_dump(exclude_none=True).items()}
    if "uninterruptible_turns" in patch:
        patch["uninterruptible_turns"] = tuple(patch["uninterruptible_turns"])
    merged = replace(current, **patch)
    _check_silence_order(replace(cfg, turn_detection=merged))
    return merged


def _only_type(side: str, given: InputIn | OutputIn, legacy: LegacyTurnDetectionIn | None) -> None:
    """A text side is just ``{"type":"text"}`` (§6.8): any other field is an error naming it.

    Where the contract is silent, ``input.type``/``output.type`` are fixed by the first update
    (``immutable_field`` after it): a session does not start or stop listening or speaking
    midway, and ``output`` is immutable but for ``volume`` anyway (§6.4).
    """
    for name in given.model_dump(exclude_none=True):
        if name != "type":
            raise errors.invalid_value(f"{side}.{name}", f"absent when {side}.type is text")
    if legacy is not None:
        raise errors.invalid_value("turn_detection", "absent when input.type is text")


def _check_silence_order(cfg: SessionConfig) -> None:
    lo, hi = cfg.silence_ms
    if lo > hi:
        raise errors.invalid_value(
            "input.turn_detection.min_silence", "less than or equal to max_silence"
        )


def _apply_output(
    cfg: SessionConfig, out: OutputIn | None, ctx: ValidationContext, *, first: bool
) -> SessionConfig:
    if out is None:
        return cfg
    changes: dict[str, Any] = {}
    if out.type is not None:
        _one_of("output.type", out.type, ["audio", "text"])
        if out.type != cfg.output_type and not first:
            raise errors.immutable_field("output.type")
        changes["output_type"] = out.type
    if (changes.get("output_type") or cfg.output_type) == "text":
        _only_type("output", out, None)
    if out.voice is not None:
        if first:
            if out.voice not in ctx.catalog_ids:
                raise errors.invalid_voice(out.voice, list(ctx.catalog_ids))
            changes["voice"] = out.voice
        elif out.voice != cfg.effective_voice:
            raise errors.immutable_field("output.voice")
    if out.format is not None:
        if first:
            changes["output_format"] = _format("output.format", out.format)
        else:
            try:
                same = _format("output.format", out.format) == cfg.output_format
            except ProtocolError:
                same = False
            if not same:
                raise errors.immutable_field("output.format")
    if out.volume is not None:
        _between("output.volume", out.volume, 0, 100)
        changes["volume"] = out.volume
    return replace(cfg, **changes)


def _validate_tools(
    tools: list[ToolIn], ctx: ValidationContext, *, reserved: tuple[ToolConfig, ...] = ()
) -> tuple[ToolConfig, ...]:
    if len(tools) > 64:
        raise errors.invalid_value("tools", "at most 64 items")
    seen = {t.name for t in reserved}
    out: list[ToolConfig] = []
    for i, tool in enumerate(tools):
        out.append(validate_tool(tool, i, ctx, seen))
        seen.add(tool.name)
    return tuple(out)


def validate_tool(tool: ToolIn, i: int, ctx: ValidationContext, seen: set[str]) -> ToolConfig:
    """Validate one tool of ``tools[i]`` (§6.5); ``seen`` holds names already taken."""
    p = f"tools[{i}]"
    if tool.type is not None:
        _one_of(f"{p}.type", tool.type, ["function"])
    if not TOOL_NAME_RE.match(tool.name):
        raise errors.invalid_value(f"{p}.name", f"a string matching {TOOL_NAME_PATTERN}")
    if tool.name in seen:
        raise errors.invalid_value(f"{p}.name", "unique")
    description = tool.description or ""
    _max_len(f"{p}.description", description, 4_096)
    parameters = _validate_parameters(f"{p}.parameters", tool.parameters)
    mode = tool.execution_mode or "interactive"
    _one_of(f"{p}.execution_mode", mode, ["interactive", "hold"])
    timeout = tool.timeout_seconds if tool.timeout_seconds is not None else 120
    _between(f"{p}.timeout_seconds", timeout, 1, 300)
    http: HttpSpec | None = None
    if tool.http is not None:
        if not ctx.allow_http_tools:
            raise errors.inline_http_tool(i)
        http = _validate_http(f"{p}.http", tool.http)
    instructions = _validate_response_instructions(
        f"{p}.response_instructions", tool.response_instructions
    )
    extras: list[tuple[str, Any]] = []
    if tool.dtmf_collected_arguments is not None:
        extras.append(("dtmf_collected_arguments", tool.dtmf_collected_arguments))
    for key in ("deployment_id", "session_update", "image_tag"):
        value = getattr(tool, key)
        if value is not None:
            extras.append((key, value))
    return ToolConfig(
        name=tool.name,
        description=description,
        parameters=parameters,
        execution_mode="hold" if mode == "hold" else "interactive",
        timeout_seconds=timeout,
        response_instructions=instructions,
        http=http,
        id=tool.id if ctx.allow_http_tools else None,
        extras=tuple(extras),
    )


def _validate_parameters(p: str, params: Any) -> dict[str, Any]:
    if params is None:
        return dict(DEFAULT_PARAMETERS)
    if not isinstance(params, dict):
        raise errors.invalid_value(p, "an object")
    if "type" in params and params["type"] != "object":
        raise errors.invalid_value(f"{p}.type", "object")
    props = params.get("properties", {})
    if not isinstance(props, dict):
        raise errors.invalid_value(f"{p}.properties", "an object")
    for key, schema in props.items():
        if not isinstance(schema, dict):
            raise errors.invalid_value(f"{p}.properties.{key}", "an object")
    required = params.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise errors.invalid_value(f"{p}.required", "an array of strings")
    for name in required:
        if name not in props:
            raise errors.invalid_value(f"{p}.required", "names present in properties")
    out = dict(params)
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    out.setdefault("required", [])
    return out


def _validate_http(p: str, http: Any) -> HttpSpec:
    if not isinstance(http, dict):
        raise errors.invalid_value(p, "an object")
    url = http.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise errors.invalid_value(f"{p}.url", "an http or https URL")
    method = http.get("http_method") or "POST"
    if not isinstance(method, str):
        raise errors.invalid_value(f"{p}.http_method", "one of: GET, POST, PUT, PATCH, DELETE")
    method = method.upper()
    _one_of(f"{p}.http_method", method, ["GET", "POST", "PUT", "PATCH", "DELETE"])
    headers_in = http.get("headers") or []
    if not isinstance(headers_in, list):
        raise errors.invalid_value(f"{p}.headers", "an array")
    headers: list[tuple[str, str]] = []
    for j, h in enumerate(headers_in):
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            raise errors.invalid_value(f"{p}.headers[{j}]", "an object with a string name")
        value = h.get("value", "")
        if not isinstance(value, str):
            raise errors.invalid_value(f"{p}.headers[{j}].value", "a string")
        headers.append((h["name"], value))
    return HttpSpec(url=url, http_method=method, headers=tuple(headers))


def _validate_response_instructions(p: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.invalid_value(p, "an object")
    out: dict[str, str] = {}
    for key in ("success", "error"):
        text = value.get(key)
        if text is None:
            continue
        if not isinstance(text, str) or len(text) > 500:
            raise errors.invalid_value(f"{p}.{key}", "a string of at most 500 characters")
        out[key] = text
    return out


def _validate_pre_connect(items: list[Any]) -> tuple[Any, ...]:
    if len(items) > 2:
        raise errors.invalid_value("pre_connect_requests", "at most 2 items")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise errors.invalid_value(f"pre_connect_requests[{i}]", "an object")
        timeout = item.get("timeout_ms")
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout > 800
        ):
            raise errors.invalid_value(
                f"pre_connect_requests[{i}].timeout_ms", "a number at most 800"
            )
    return tuple(items)


def pre_connect_echo(item: Any) -> Any:
    """A pre-connect request as echoed (§6.1): ``http.headers`` reduced to their names.

    Header values are credentials for the telephony provider's lookup; like tool headers (§6.5)
    they never leave the server, so every echo, record and log line built from the resolved
    configuration carries ``[{"name": …}]`` only. Headers given as ``{name: value}`` are echoed
    the same way.
    """
    if not isinstance(item, dict) or not isinstance(item.get("http"), dict):
        return item
    headers = item["http"].get("headers")
    if headers is None:
        return item
    if isinstance(headers, dict):
        names = [{"name": str(name)} for name in headers]
    elif isinstance(headers, list):
        names = [
            {"name": h["name"]}
            for h in headers
            if isinstance(h, dict) and isinstance(h.get("name"), str)
        ]
    else:
        names = []
    return {**item, "http": {**item["http"], "headers": names}}


def _validate_webhook(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_webhook("", "an object")
    url = value.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://\S+$", url) or len(url) > 2048:
        raise errors.invalid_webhook("url", "an http or https URL of at most 2048 characters")
    events = value.get("events", list(WEBHOOK_EVENTS))
    if not isinstance(events, list) or any(e not in WEBHOOK_EVENTS for e in events):
        raise errors.invalid_webhook("events", "a subset of: " + ", ".join(WEBHOOK_EVENTS))
    secret = value.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 32):
        raise errors.invalid_webhook("secret", "a string of at least 32 characters")
    return {"url": url, "events": events, "secret": secret}
