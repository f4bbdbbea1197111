"""The load suite's split of a row's turns: those committed at min_silence, apart from those the
turn rule held (an unsure turn waits at least 1.3 s), so a row shows what the load costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.bench_load import (
    PROMPT_DECISION_S,
    Caller,
    Turn,
    pooled,
    promptly_decided,
    step_waits,
)
from bench.report import prompt_p95_cell

from vocalis.session.end_of_turn import DEFAULT_POLICY


def _turn(decided: float | None, answered: float | None) -> Turn:
    end = 100.0
    return Turn(
        speech_end=end,
        stopped=None if decided is None else end + decided,
        first_audio=None if answered is None else end + answered,
    )


def test_turns_the_rule_held_are_left_out_of_the_prompt_figure() -> None:
    caller = Caller(
        admitted=True,
        turns=[
            _turn(0.95, 1.10),  # committed at min_silence
            _turn(1.66, 1.70),  # held as unsure: waited by rule, not by load
            _turn(1.05, 1.60),  # committed on time, answered late: the load's doing
            _turn(0.90, None),  # never answered: no figure
            _turn(None, 2.0),  # no decision seen
        ],
    )
    assert promptly_decided([caller]) == pytest.approx([1.10, 1.60])
    # the cut lies below the shortest wait of a turn the rule held
    assert DEFAULT_POLICY.unsure_floor_ms > PROMPT_DECISION_S * 1000


def test_rows_stored_before_the_split_show_no_figure() -> None:
    assert prompt_p95_cell({"v2v_p95": 1.9}) == "–"
    assert prompt_p95_cell({"v2v_p95_prompt": 1.456, "prompt_turns": 15}) == "1.46 (15 turns)"


def test_alternated_runs_pool_by_variant(tmp_path: Path) -> None:
    """A/B runs saved with ``--results`` pool every turn of a variant's rows, whatever run."""
    for label, rows in [
        ("new_1", [[1.0, 2.0], [3.0]]),
        ("new_2", [[4.0]]),
        ("base_1", [[5.0, 6.0]]),
    ]:
        summary = {"rows": [{"v2v_all": turns} for turns in rows]}
        (tmp_path / f"{label}.json").write_text(json.dumps(summary))
    pools = pooled(tmp_path)
    assert sorted(pools["new"]) == [1.0, 2.0, 3.0, 4.0]
    assert pools["base"] == [5.0, 6.0]


def test_step_waits_time_each_step_after_what_it_waits_on() -> None:
    prepared = {  # ready before the decision: its audio waits for the turn to end
        "stt_final_ms": 400,
        "llm_first_token_ms": 600,
        "first_piece_ms": 700,
        "tts_first_audio_ms": 780,
        "turn_decision_ms": 800,
        "first_audio_sent_ms": 805,
    }
    late = {  # decided first: its audio goes out once synthesised
        "stt_final_ms": 500,
        "llm_first_token_ms": 1500,
        "first_piece_ms": 1600,
        "tts_first_audio_ms": 2000,
        "turn_decision_ms": 800,
        "first_audio_sent_ms": 2010,
    }
    waits = step_waits([prepared, late, {"stt_final_ms": 300}])
    assert waits == {
        "first token after final": [200.0, 1000.0],
        "first piece after first token": [100.0, 100.0],
        "synthesis of the first piece": [80.0, 400.0],
        "sent after decision and audio": [5.0, 10.0],
    }
