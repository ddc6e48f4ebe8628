"""The in-process profiles are taken once per round; the fastest round of each stage is reported."""

from __future__ import annotations

from harness import features, stages


def test_fastest_stage_of_the_rounds_is_kept_per_key() -> None:
    rounds: list[stages.StageCosts] = [
        {"single": {"decode": 0.5, "model": 20.0}, "batch_1000": {"decode": 300.0}},
        {"single": {"decode": 0.4, "model": 25.0}, "batch_1000": {"decode": 280.0}},
        {"error": "the snippet failed this round"},
    ]
    assert stages.fastest(rounds) == {
        "single": {"decode": 0.4, "model": 20.0},
        "batch_1000": {"decode": 280.0},
    }


def test_stage_error_is_reported_only_when_every_round_failed() -> None:
    assert stages.fastest([{"error": "first"}, {"error": "second"}]) == {"error": "second"}
    assert stages.fastest([]) == {}


def test_fastest_feature_cost_of_the_rounds() -> None:
    rounds: list[dict[str, float | str]] = [
        {"metrics_us": 2.5, "access_log_us": 4.0},
        {"metrics_us": 3.0, "access_log_us": 3.5},
    ]
    assert features.fastest(rounds) == {"metrics_us": 2.5, "access_log_us": 3.5}
    assert features.fastest([{"error": "no"}]) == {"error": "no"}
