"""The load suite's quick mode runs in the test suite (fake providers), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

from bench.bench_load import main


def test_quick_load_suite_answers_every_admitted_caller_and_refuses_the_rest(
    tmp_path: Path,
) -> None:
    summary = main(["--quick", "--results", str(tmp_path)])
    rows = {(r["callers"], r["burst"]): r for r in summary["rows"]}
    assert set(rows) == {(1, False), (2, False), (4, True)}
    for row in summary["rows"]:
        assert row["admitted"] >= 1
        assert row["answered"] == row["turns"] == 2 * row["admitted"]
    burst = rows[(4, True)]
    assert burst["admitted"] == 2 and burst["refused"] == 2  # budget 2: the other two told so
    assert rows[(2, False)]["refused"] == 0
    assert (tmp_path / "load_latency.png").stat().st_size > 0
    assert (tmp_path / "load_cpu.png").stat().st_size > 0
