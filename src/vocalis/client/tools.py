"""Client-executed tools from plain Python functions (contract §6.5, §13).

A function's name, signature, annotations and docstring become the tool definition sent in
``session.update``; the function itself answers ``tool.call``::

    def lookup_order(order_id: str, verbose: bool = False) -> dict[str, str]:
        \"\"\"Look up an order by id.

        Args:
            order_id: the order number, like ORD-12345.
        \"\"\"
        return {"status": "shipped"}

``tool_definition(lookup_order)`` gives ``{"type": "function", "name": "lookup_order",
"description": "Look up an order by id.", "parameters": {"type": "object", "properties":
{"order_id": {"type": "string", "description": "the order number, like ORD-12345."},
"verbose": {"type": "boolean"}}, "required": ["order_id"]}}``.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args, get_origin

ToolFunction = Callable[..., Any]

_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    tuple: "array",
}
_PARAM_LINE = re.compile(r"^\s*(?::param\s+)?\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def tool_definition(func: ToolFunction, name: str | None = None) -> dict[str, Any]:
    """The §6.5 flat tool definition derived from ``func``."""
    tool_name = name or func.__name__
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise ValueError(f"tool name {tool_name!r} must match ^[A-Za-z0-9_-]{{1,64}}$")
    summary, param_docs = _parse_docstring(inspect.getdoc(func) or "")
    hints = _type_hints(func)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        schema, optional = _schema_of(annotation)
        if param.name in param_docs:
            schema["description"] = param_docs[param.name]
        properties[param.name] = schema
        if param.default is param.empty and not optional:
            required.append(param.name)
    return {
        "type": "function",
        "name": tool_name,
        "description": summary[:4096],
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def _type_hints(func: ToolFunction) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError):
        return dict(getattr(func, "__annotations__", {}))


def _schema_of(annotation: Any) -> tuple[dict[str, Any], bool]:
    """JSON Schema for one annotation, and whether ``None`` is allowed (then not required)."""
    origin = get_origin(annotation)
    schema: dict[str, Any]
    if origin is typing.Annotated:
        base, *extras = get_args(annotation)
        schema, optional = _schema_of(base)
        text = next((e for e in extras if isinstance(e, str)), None)
        if text:
            schema["description"] = text
        return schema, optional
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        if len(members) == 1:
            return _schema_of(members[0])[0], optional
        return {}, optional
    if origin is Literal:
        values = list(get_args(annotation))
        schema = {"enum": values}
        kinds = {_JSON_TYPES.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema, False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        return {"type": _JSON_TYPES.get(type(values[0]), "string"), "enum": values}, False
    if origin in (list, tuple, set, frozenset):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        schema = {"type": "array"}
        if len(args) == 1:
            schema["items"] = _schema_of(args[0])[0]
        return schema, False
    if origin is dict or origin is Mapping:
        return {"type": "object"}, False
    if annotation is None or annotation is type(None):
        return {}, True
    if isinstance(annotation, type):
        for base, json_type in _JSON_TYPES.items():
            if issubclass(annotation, base):
                return {"type": json_type}, False
    return {}, False


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph, and parameter descriptions from Google- or Sphinx-style docs."""
    paragraphs = doc.strip().split("\n\n")
    summary = " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""
    params: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:", "params:"):
            in_args = True
            continue
        if in_args and stripped.endswith(":") and not line.startswith((" ", "\t")):
            in_args = False  # next section (Returns:, Raises:)
        if in_args or stripped.startswith(":param"):
            match = _PARAM_LINE.match(stripped)
            if match:
                params[match.group(1)] = match.group(2).strip()
    if summary.lower().startswith(("args:", ":param")):
        summary = ""
    return summary, params


def load_tools(spec: str) -> dict[str, ToolFunction]:
    """Import ``module:attr``: a dict name→callable, a list of callables, or one callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--tools expects module:attr, got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return tools_from(target)


def tools_from(target: Any) -> dict[str, ToolFunction]:
    """Normalise a dict, a list/tuple of callables, or a callable into name→callable."""
    if isinstance(target, Mapping):
        tools = {str(name): func for name, func in target.items()}
    elif isinstance(target, list | tuple):
        tools = {func.__name__: func for func in target}
    elif callable(target):
        tools = {target.__name__: target}
    else:
        raise TypeError(f"tools must be a dict, a list of callables or a callable: {target!r}")
    for name, func in tools.items():
        if not callable(func):
            raise TypeError(f"tool {name!r} is not callable")
    return tools


def tool_definitions(tools: Mapping[str, ToolFunction]) -> list[dict[str, Any]]:
    return [tool_definition(func, name) for name, func in tools.items()]


async def run_tool(func: ToolFunction, arguments: Mapping[str, Any]) -> tuple[str, bool]:
    """Call ``func(**arguments)`` (sync functions in a worker thread); the ``tool.result``
    string and whether it is an error. Non-string results are JSON-encoded."""
    try:
        if inspect.iscoroutinefunction(func):
            value = await func(**arguments)
        else:
            value = await asyncio.to_thread(func, **arguments)
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}", True
    if isinstance(value, str):
        return value, False
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str), False
    except (TypeError, ValueError):
        return str(value), False
