"""BudgetTracker: the window's length from two resets, the time waited with the budget spent,
and how long N more requests take at the announced budget (the dry run's estimate and the
progress line's ETA)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cldprov_async._budget import ASSUMED_WINDOW, BudgetTracker
from cldprov_async._snapshot import RateLimit

T0 = 1_800_000_000.0


def snap(limit: int, remaining: int, reset: float) -> RateLimit:
    return RateLimit(limit, remaining, datetime.fromtimestamp(reset, UTC))


def test_nothing_announced_means_no_estimate() -> None:
    budget = BudgetTracker()
    budget.observe(None, T0)
    assert budget.seconds_for(10_000, T0) is None
    assert budget.waited(T0 + 5) == 0.0


def test_the_window_is_assumed_hourly_until_two_resets_are_seen() -> None:
    budget = BudgetTracker()
    budget.observe(snap(2000, 500, T0 + 600), T0)
    assert (budget.window, budget.window_known) == (ASSUMED_WINDOW, False)
    assert budget.seconds_for(400, T0) is None  # fits what is left
    # 500 now, then 2000 an hour: 4,000 more need this window's rest and two more windows.
    assert budget.seconds_for(4000, T0) == pytest.approx(600 + 3600)
    budget.observe(snap(2000, 1999, T0 + 600 + 3600), T0 + 601)
    assert (budget.window, budget.window_known) == (3600.0, True)


def test_a_learned_short_window_drives_the_estimate() -> None:
    budget = BudgetTracker()
    budget.observe(snap(400, 10, T0 + 1), T0 + 0.5)
    budget.observe(snap(400, 399, T0 + 2), T0 + 1.01)
    assert budget.window == pytest.approx(1.0)
    assert budget.seconds_for(399, T0 + 1.5) is None
    assert budget.seconds_for(399 + 800, T0 + 1.5) == pytest.approx(0.5 + 1.0)


def test_a_stale_snapshot_counts_from_the_next_reset() -> None:
    budget = BudgetTracker()
    budget.observe(snap(100, 0, T0 + 1), T0)
    budget.observe(snap(100, 0, T0 + 2), T0 + 1.5)  # learns the 1 s window
    later = T0 + 4.25  # two windows later, no answer since
    assert budget.seconds_for(150, later) == pytest.approx(0.75)


def test_waiting_is_the_wall_time_with_the_budget_spent() -> None:
    budget = BudgetTracker()
    budget.observe(snap(10, 0, T0 + 10), T0 + 4)  # spent 6 s before the reset
    assert budget.waited(T0 + 7) == pytest.approx(3.0)
    assert budget.waited(T0 + 12) == pytest.approx(6.0)  # the window reopened at T0 + 10
    budget.observe(snap(10, 0, T0 + 20), T0 + 18)
    assert budget.waited(T0 + 30) == pytest.approx(8.0)


def test_bulk_work_counts_from_the_reserve_it_leaves_to_normal_calls() -> None:
    budget = BudgetTracker(reserve=0.1)  # a rotation stops with 10 of 100 left
    budget.observe(snap(100, 10, T0 + 10), T0 + 4)
    assert budget.waited(T0 + 7) == pytest.approx(3.0)  # at the reserve: waiting
    # 40 usable now (50 - 10), then 90 a window: 130 more need this window and one more.
    budget.observe(snap(100, 50, T0 + 20), T0 + 11)
    assert budget.seconds_for(40, T0 + 11) is None
    assert budget.seconds_for(130, T0 + 11) == pytest.approx(9.0)
    assert budget.seconds_for(131, T0 + 11) == pytest.approx(9.0 + 10.0)
