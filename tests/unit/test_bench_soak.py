"""The soak's growth figures (bench_load) read a climb, not a plateau or a swing."""

from __future__ import annotations

from bench.bench_load import END_WINDOW, WARM_WINDOW, second_half_growth, window_median


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


def test_a_window_reads_the_level_of_a_swing_not_the_phase_one_sample_caught() -> None:
    # a plateau swinging between 1760 and 1850 MB from one sample to the next
    rss = [1760.0 if i % 2 else 1850.0 for i in range(120)]
    warm, end = window_median(samples(rss), *WARM_WINDOW), window_median(samples(rss), *END_WINDOW)
    assert warm == end == 1805.0  # single samples would read anything from -5 % to +5 %


def test_windows_still_see_a_climb() -> None:
    rss = [1000 + 2 * i for i in range(120)]  # +2 MB every 5 s
    warm, end = window_median(samples(rss), *WARM_WINDOW), window_median(samples(rss), *END_WINDOW)
    assert 100 * (end - warm) / warm > 10.0
