"""The pure admission rule: budget, load signal, resumes exempt."""

from __future__ import annotations

from vocalis.session.admission import Budget, Load, Verdict, available, decide


def test_the_session_budget_refuses_the_next_new_session_only() -> None:
    budget = Budget(max_sessions=4, max_lag_seconds=0)
    assert decide(budget, Load(3, 0.0)) is Verdict.ADMIT
    assert decide(budget, Load(4, 0.0)) is Verdict.FULL
    assert decide(budget, Load(9, 0.0)) is Verdict.FULL
    assert available(budget, Load(3, 0.0)) == 1
    assert available(budget, Load(5, 0.0)) == 0


def test_workers_behind_refuse_new_sessions_even_below_the_budget() -> None:
    budget = Budget(max_sessions=4, max_lag_seconds=1.0)
    assert decide(budget, Load(1, 1.0)) is Verdict.ADMIT  # at the bound: still served in time
    assert decide(budget, Load(1, 1.5)) is Verdict.OVERLOADED
    assert available(budget, Load(1, 1.5)) == 0


def test_resumes_are_always_admitted() -> None:
    budget = Budget(max_sessions=1, max_lag_seconds=0.5)
    assert decide(budget, Load(7, 9.0), resume=True) is Verdict.ADMIT


def test_zero_means_no_limit() -> None:
    budget = Budget(max_sessions=0, max_lag_seconds=0)
    assert decide(budget, Load(10_000, 60.0)) is Verdict.ADMIT
    assert available(budget, Load(10_000, 0.0)) is None
