"""A session's resumable state as one JSON document, so another node can continue it (§14).

Why a checkpoint and not a live replica: a session's audio pipeline, model caches and running
reply cannot move between processes, and the contract does not ask them to. What a resume must
find intact is exactly what §14.1 says survives a disconnect: the configuration, the history (with
each tool call and its status), the pending tool calls, the queued replies, the resume token and
the session's fixed expiry. A reply in flight is not part of it: at a disconnect it ends as
interrupted with its played text in the history, and that is what the checkpoint already holds
once the reply closes.

Everything here is pure: :func:`capture` reads a session, :func:`encode`/:func:`decode` turn a
:class:`Checkpoint` into bytes and back (pydantic validates the nested dataclasses, so a corrupt or
foreign document fails loudly), and :func:`restore_into` loads one into a fresh session. Times
are wall-clock seconds: monotonic instants mean nothing on another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from vocalis.protocol.config import SessionConfig
from vocalis.session.history import Entry, ToolCallRecord
from vocalis.session.reply import ReplyPlan

if TYPE_CHECKING:
    from vocalis.session.engine import Session

FORMAT_VERSION = 1


@dataclass
class QueuedPlan:
    """A queued reply, with its trigger instant as wall time (``queued_at`` is monotonic)."""

    plan: ReplyPlan
    queued_wall: float


@dataclass
class Checkpoint:
    """Everything a resume on another node needs (see the module docstring)."""

    session_id: str
    node_id: str  # the node that wrote it (the owner at that moment)
    resume_token: str
    config: SessionConfig
    created_wall: float
    cap_seconds: float
    expires_at: int
    history: list[Entry]
    queue: list[QueuedPlan]
    tool_rounds: int
    written_wall: float
    # Already rendered timeline turns and config changes (§17.4), so the artifact of a session
    # that moved between nodes still tells the whole conversation.
    turns: list[dict[str, Any]] = field(default_factory=list)
    config_changes: list[dict[str, Any]] = field(default_factory=list)
    version: int = FORMAT_VERSION

    def pending_calls(self) -> list[ToolCallRecord]:
        """Calls still waiting for a result; they live on the history's assistant entries."""
        return [c for e in self.history for c in e.calls if c.status == "pending"]


_ADAPTER: TypeAdapter[Checkpoint] = TypeAdapter(Checkpoint)


def encode(checkpoint: Checkpoint) -> bytes:
    return _ADAPTER.dump_json(checkpoint)


def decode(data: bytes | str) -> Checkpoint:
    """The checkpoint in ``data``; ``ValueError`` (pydantic's) when it is not one."""
    checkpoint = _ADAPTER.validate_json(data)
    if checkpoint.version != FORMAT_VERSION:
        raise ValueError(f"checkpoint format {checkpoint.version}, expected {FORMAT_VERSION}")
    return checkpoint


def capture(session: Session, node_id: str) -> Checkpoint:
    """The resumable state of ``session`` now (a reply in flight is not included: §14.1)."""
    now_mono, now_wall = session.clock.now(), session.clock.wall()
    timeline = session.timeline()
    return Checkpoint(
        session_id=session.id,
        node_id=node_id,
        resume_token=session.resume_token,
        config=session.config,
        created_wall=session.created_wall,
        cap_seconds=session.cap_seconds,
        expires_at=session.expires_at,
        history=list(session.history.entries),
        queue=[
            QueuedPlan(plan, now_wall - (now_mono - plan.queued_at))
            for plan in session.replies.queued_plans()
        ],
        tool_rounds=session.replies.tool_rounds,
        written_wall=now_wall,
        turns=list(timeline["turns"]),
        config_changes=list(timeline["config_changes"]),
    )


def restore_into(session: Session, checkpoint: Checkpoint) -> None:
    """Load ``checkpoint`` into ``session``, freshly built from its config and resume token and
    not yet running. Pending calls are handed to the tool desk once the session runs
    (:meth:`~vocalis.session.tools.ToolDesk.adopt`), since their timers need its task group."""
    now_mono, now_wall = session.clock.now(), session.clock.wall()
    session.created_wall = checkpoint.created_wall
    session.created_mono = now_mono - (now_wall - checkpoint.created_wall)
    session.cap_seconds = checkpoint.cap_seconds
    session.expires_at = checkpoint.expires_at
    session.history.entries = list(checkpoint.history)
    session.prior_turns = list(checkpoint.turns)
    session.prior_config_changes = list(checkpoint.config_changes)
    for queued in checkpoint.queue:
        queued.plan.queued_at = now_mono - (now_wall - queued.queued_wall)
        session.replies.enqueue(queued.plan)
    session.replies.tool_rounds = checkpoint.tool_rounds


def revive_calls(session: Session) -> None:
    """Once a restored session runs: its pending tool calls get their timers back, and each
    reply that carried them is known again so that their results make one follow-up (§13.2)."""
    for entry in session.history.entries:
        pending = [c for c in entry.calls if c.status == "pending"]
        if not pending or entry.item_id is None:
            continue
        # A greeting-shaped plan builds a reply without a model request: it never runs, it only
        # stands for the reply that dispatched these calls on the previous node.
        carrier = session.build_reply(ReplyPlan("greeting", session.clock.now()), tools=False)
        carrier.reply_id = pending[0].reply_id
        carrier.item_id = entry.item_id
        carrier.calls = list(entry.calls)  # the same records as the history's
        carrier.finished = True
        session.replies.restore_carrier(carrier, pending[0].dispatched_at)
        for call in pending:
            session.tools.adopt(call)
