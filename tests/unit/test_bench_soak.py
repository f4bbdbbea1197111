"""The soak's leak indicator (bench_load.second_half_growth) reads a climb, not a plateau."""

from __future__ import annotations

from bench.bench_load import second_half_growth


def samples(rss: list[float]) -> list[tuple[float, float, int]]:
    return [(5.0 * i, mb, 20) for i, mb in enumerate(rss)]


def test_a_cache_filling_early_then_flat_is_no_growth() -> None:
    # climbs for the first third (a cache filling), then moves around a plateau
    rss = [1000 + 30 * i for i in range(10)] + [1300 + (-1) ** i * 20 for i in range(30)]
    assert abs(second_half_growth(samples(rss))) < 1.0


def test_a_steady_climb_shows() -> None:
    rss = [1000 + 5 * i for i in range(40)]  # +5 MB every 5 s to the end
    assert second_half_growth(samples(rss)) > 5.0


def test_too_few_samples_say_nothing() -> None:
    assert second_half_growth(samples([1000, 2000, 3000])) == 0.0
