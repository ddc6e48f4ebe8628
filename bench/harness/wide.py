"""The benchmark's second model: a HistGradientBoosting Pipeline on a wider table than Iris.

22 features (20 numbers, 2 text columns), a few empty cells, 3 classes, 3,000 rows, made here from a fixed
seed (nothing downloaded). `mlkube train --data` makes it one Pipeline (imputation, one-hot encoding,
HistGradientBoostingClassifier) converted to one ONNX graph with one input per column, so requests name
their features and every value goes through the input schema's checks: the other serving path from the
Iris forest's one float tensor.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

NUMBERS = [f"x{index:02d}" for index in range(1, 21)]
TEXT = {"region": ["north", "south", "east", "west", "centre"], "plan": ["basic", "plus", "pro"]}
TARGET = "segment"
ROWS = 3000
SEED = 7


def write_wide_csv(path: Path) -> Path:
    """The table, deterministic for a seed; the target follows the features so the model has work to do."""
    rng = random.Random(SEED)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*NUMBERS, *TEXT, TARGET])
        for _ in range(ROWS):
            numbers = [rng.gauss(0, 1) for _ in NUMBERS]
            region, plan = rng.choice(TEXT["region"]), rng.choice(TEXT["plan"])
            score = sum(numbers[:6]) + (1.5 if plan == "pro" else 0) - (1 if region == "north" else 0)
            segment = "low" if score < -1 else "high" if score > 1 else "mid"
            cells = [f"{value:.4f}" if rng.random() > 0.03 else "" for value in numbers]
            writer.writerow([*cells, region if rng.random() > 0.03 else "", plan, segment])
    return path


def wide_row() -> dict[str, float | str]:
    """One request row by feature name."""
    row: dict[str, float | str] = {
        name: round(0.1 * (index % 7) - 0.3, 2) for index, name in enumerate(NUMBERS)
    }
    row.update(region="east", plan="pro")
    return row
