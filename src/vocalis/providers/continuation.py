"""Stopping a generation and continuing it later from its own text (assistant prefill).

A local model decodes a request to its end whether or not anyone reads the tokens, so a
provider that wants the cores back while its reply is busy elsewhere (synthesising speech)
stops the request and later sends the same messages plus the text so far as the assistant's
unfinished message; the chat template continues that message instead of starting a new one.
Pure rules, no model: which texts can be continued.
"""

from __future__ import annotations


def may_continue(written: str, *, holding: bool, calls: bool) -> bool:
    """Whether a generation stopped after ``written`` can be continued from that text: not
    inside a tool call (held back, or native call deltas), and not after whitespace, which
    the chat template may trim from the prefix (the continuation would then lose a space or a
    line break)."""
    return bool(written) and not holding and not calls and not written[-1].isspace()
