"""Whether this node takes one more session: the pure admission rule (§15.4, and beyond it).

An overloaded node used to take every caller: with ten callers on 2 cores all ten sat in
silence. The rule now refuses a *new* session (``at_capacity``, close 1013, which clients retry,
ideally on another node) when either

* the node holds its budget of sessions (``max_sessions``; ACTIVE and DETACHED both count,
  as the contract says), or
* the shared model workers are already behind (the oldest waiting inference job has waited more
  than ``max_lag_seconds``): the sessions it holds are being served late, and one more would
  make every one of them later.

Resumes are always admitted (§15.4): the session already exists and its caller is mid-call.
Pure and synchronous: counts and lags in, a verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    ADMIT = "admit"
    FULL = "full"  # the session budget is reached
    OVERLOADED = "overloaded"  # the model workers are behind


@dataclass(frozen=True)
class Budget:
    max_sessions: int  # 0 = no limit on the count
    max_lag_seconds: float  # 0 = the load signal is not consulted


@dataclass(frozen=True)
class Load:
    sessions: int  # held now, attached or waiting for a resume
    lag_seconds: float  # backlog of the most-behind model worker


def decide(budget: Budget, load: Load, *, resume: bool = False) -> Verdict:
    if resume:
        return Verdict.ADMIT
    if budget.max_sessions > 0 and load.sessions >= budget.max_sessions:
        return Verdict.FULL
    if budget.max_lag_seconds > 0 and load.lag_seconds > budget.max_lag_seconds:
        return Verdict.OVERLOADED
    return Verdict.ADMIT


def available(budget: Budget, load: Load) -> int | None:
    """Sessions that could still be created now; ``None`` when the count is unlimited."""
    if decide(budget, load) is Verdict.OVERLOADED:
        return 0
    if budget.max_sessions <= 0:
        return None
    return max(0, budget.max_sessions - load.sessions)
