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


def steps_aside(
    *,
    continuable: bool,
    first_piece_out: bool,
    replies_waiting: bool,
    stepped_aside_this_spell: bool,
) -> bool:
    """Whether a generation stops now to let other replies have the model for their first
    piece. Only a reply whose own first piece is out (its caller is already hearing it) gives
    way, only where it can be continued, and once per spell of waiting replies: when the hold
    runs out it carries on even if replies still wait, so a steady stream of new turns cannot
    starve it."""
    return continuable and first_piece_out and replies_waiting and not stepped_aside_this_spell
