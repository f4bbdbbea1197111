"""Checks a model's tool arguments against the tool's ``parameters`` (§13.1).

Only the keywords the contract honours are checked (``type``, ``required``, ``enum``,
``pattern`` as a full match, ``format``), so a general JSON Schema engine would check both more and
differently (``pattern`` there is a search, not a full match).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from urllib.parse import urlparse

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def check_arguments(arguments: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """Problems with ``arguments``, worded for the model; empty when they are valid."""
    problems: list[str] = []
    props: dict[str, Any] = parameters.get("properties") or {}
    for name in parameters.get("required") or []:
        if name not in arguments:
            problems.append(f"missing required argument '{name}'")
    for name, value in arguments.items():
        schema = props.get(name)
        if isinstance(schema, dict):
            problems.extend(_check_value(name, value, schema))
    return problems


def _check_value(name: str, value: Any, schema: dict[str, Any]) -> list[str]:
    expected = schema.get("type")
    if isinstance(expected, str) and expected in _TYPES:
        ok = isinstance(value, _TYPES[expected])
        if expected in ("integer", "number") and isinstance(value, bool):
            ok = False
        if expected == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            return [f"argument '{name}' must be of type {expected}"]
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        return [f"argument '{name}' must be one of: {allowed}"]
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.fullmatch(pattern, value) is None:
                    return [f"argument '{name}' must match the pattern {pattern}"]
            except re.error:
                pass
        fmt = schema.get("format")
        if isinstance(fmt, str) and not _format_ok(fmt, value):
            return [f"argument '{name}' must be a valid {fmt}"]
    return []


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "email":
            return _EMAIL.match(value) is not None
        if fmt == "date":
            date.fromisoformat(value)
            return len(value) == 10
        if fmt == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return "T" in value or " " in value
        if fmt == "uri":
            parsed = urlparse(value)
            return bool(parsed.scheme and (parsed.netloc or parsed.path))
    except ValueError:
        return False
    return True
