"""What the turn-taking core decides: the actions it hands to its shell, and the agent's side
of the floor it is told about. Plain frozen dataclasses, matched by the shell with ``match``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from vocalis.providers.base import Transcript


class Floor(Enum):
    """What the agent is doing, as turn-taking needs to know it."""

    IDLE = auto()  # no reply in progress
    PREPARING = auto()  # a reply is in progress, nothing audible yet
    SPEAKING = auto()  # audible, and speech may interrupt it
    SPEAKING_UNINTERRUPTIBLE = auto()  # audible, protected (§11.4 ``interrupt_response``)


@dataclass(frozen=True)
class TurnOpened:
    """A user turn opened; ``announce``: send ``input.speech.started`` (a barge-in already did)."""

    item_id: str
    announce: bool


@dataclass(frozen=True)
class WantPartial:
    """Decode the turn's audio from ``start`` to now for a partial transcript."""

    item_id: str
    start: int


@dataclass(frozen=True)
class WantFinal:
    """Decode ``start``–``end`` (the turn's speech, up to the pause) as the final transcript."""

    item_id: str
    start: int
    end: int


@dataclass(frozen=True)
class WantVerdict:
    """Ask the turn model whether the turn is complete, on ``start``–``end``: its audio with
    the pause so far, as the model was trained (pipecat's Smart Turn pipeline), and the latest
    partial transcript for a model that reads text too."""

    item_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class CancelVerdict:
    """Speech resumed: the turn-model call in flight is stale."""

    item_id: str


@dataclass(frozen=True)
class CancelFinal:
    """Speech resumed: the final decode in flight is stale."""

    item_id: str


@dataclass(frozen=True)
class UserPartial:
    """A new partial transcript of the open turn (``transcript.user.delta``)."""

    item_id: str
    text: str


@dataclass(frozen=True)
class Speculate:
    """The turn looks complete: prepare the reply to ``text`` while the silence timer runs.

    ``commit_in_ms``: the silence still to run before the turn ends, if the judgement it
    expects holds; the reply cuts its first piece short when the caller is about to wait."""

    text: str
    commit_in_ms: int


@dataclass(frozen=True)
class DropSpeculation:
    """The user spoke again: a reply prepared in advance no longer answers the turn."""


@dataclass(frozen=True)
class CommitTurn:
    """The user's turn is over (``input.speech.stopped``); times are wall seconds."""

    item_id: str
    transcript: Transcript
    started_wall: float
    ended_wall: float
    speech_end_wall: float
    final_wall: float | None


@dataclass(frozen=True)
class WantCandidatePartial:
    """Decode the barge-in candidate's audio from ``start`` to sample ``at`` (now)."""

    candidate: int
    start: int
    at: int


@dataclass(frozen=True)
class PauseReply:
    """Hold the agent's audio: the user may be interrupting (§11.4)."""


@dataclass(frozen=True)
class DropCandidate:
    """The candidate ended without interrupting; ``resume`` the paused reply."""

    resume: bool


@dataclass(frozen=True)
class BargeIn:
    """Interrupt the agent's reply now (§11.5); a :class:`TurnOpened` follows."""


Action = (
    TurnOpened
    | WantPartial
    | WantFinal
    | CancelFinal
    | WantVerdict
    | CancelVerdict
    | UserPartial
    | Speculate
    | DropSpeculation
    | CommitTurn
    | WantCandidatePartial
    | PauseReply
    | DropCandidate
    | BargeIn
)


@dataclass(frozen=True)
class OpenTurn:
    """A turn cut short by a disconnect: its audio still counts (§14.1)."""

    item_id: str
    start: int
    end: int
