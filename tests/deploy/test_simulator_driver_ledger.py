"""The simulator's observation-to-command bookkeeping (simulator_driver.StampLedger), without ROS."""

from __future__ import annotations

import pytest

from robotune.deploy.ros.simulator_driver import StampLedger

MS = 1_000_000  # ns


def test_first_answer_to_each_state_is_one_latency_sample():
    ledger = StampLedger()
    for stamp in (10 * MS, 11 * MS, 12 * MS):
        ledger.published(stamp)
    ledger.answered(11 * MS, 13 * MS)  # 2 ms after the state was stamped
    ledger.answered(11 * MS, 14 * MS)  # a hold repeating the same state: not a second sample
    ledger.answered(None, 14 * MS)  # a command without an echoed stamp
    ledger.answered(99 * MS, 100 * MS)  # a stamp this simulator never published
    assert ledger.latencies_ms == pytest.approx([2.0])
    assert ledger.answers_after_episode_end == 0


def test_answers_to_an_ended_episode_are_counted_apart():
    ledger = StampLedger()
    ledger.published(10 * MS)
    ledger.end_episode()  # the simulator then stays silent for its reset gap
    ledger.published(60 * MS)  # the new episode's first state
    ledger.answered(10 * MS, 58 * MS)  # read just before the gap: 48 ms old, not the runner's latency
    ledger.answered(60 * MS, 61 * MS)
    assert ledger.latencies_ms == pytest.approx([1.0])
    assert ledger.answers_after_episode_end == 1


def test_unanswered_stamps_stay_bounded():
    ledger = StampLedger()
    for stamp in range(StampLedger.MAX_OPEN + 1):
        ledger.published(stamp)
    assert len(ledger.open) <= StampLedger.MAX_OPEN
    ledger.answered(StampLedger.MAX_OPEN, StampLedger.MAX_OPEN + MS)  # the newest survives the trim
    assert ledger.latencies_ms == pytest.approx([1.0])
