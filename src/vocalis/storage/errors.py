"""Errors the storage layer reports to its callers (the REST routes map them to §17.1 bodies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    param: str | None
    message: str  # the problem alone, e.g. "Field required"


class InvalidInput(Exception):
    """A request body or query value is not acceptable: a 422 ``validation_error``."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems

    @classmethod
    def one(cls, param: str | None, message: str) -> InvalidInput:
        return cls([Problem(param, message)])


class SessionActive(Exception):
    """Deleting a session that has not ended (409 ``session_active``)."""


# Pydantic error types whose wording the contract fixes (§17.1) or that would leak class names.
_MESSAGE_OVERRIDES = {
    "int_parsing": "Input should be a valid integer",
    "int_from_float": "Input should be a valid integer",
    "model_type": "Input should be a valid dictionary",
    "model_attributes_type": "Input should be a valid dictionary",
    "json_invalid": "Invalid JSON",
}


def param_path(loc: tuple[int | str, ...] | list[int | str]) -> str | None:
    """``("tools", 0, "http", "url")`` → ``tools[0].http.url``; ``None`` for an empty path."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def problems_from_pydantic(
    errors: Any, *, drop_prefixes: tuple[str, ...] = (), prefix: tuple[int | str, ...] = ()
) -> list[Problem]:
    """Translate pydantic error dicts; ``drop_prefixes`` strips FastAPI's ``query``/``body``."""
    problems: list[Problem] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if len(loc) > 1 and loc[0] in drop_prefixes:
            loc = loc[1:]
        message = _MESSAGE_OVERRIDES.get(err.get("type", ""), err.get("msg", "Invalid value"))
        problems.append(Problem(param_path([*prefix, *loc]), message))
    return problems
