"""Writes demand.csv: a generated hourly series for examples/forecast.rnn (see README.md here).

    python examples/data/make_demand.py    # rewrites examples/data/demand.csv, byte for byte
"""

from pathlib import Path

import numpy as np


def demand_rows(days: int = 28, seed: int = 2024) -> str:
    """CSV text "day,hour,demand": 1.5 + a daily cycle (two harmonics) - 0.3 on weekends
    + AR(1) noise e_t = 0.8 e_{t-1} + 0.05 z_t, z_t ~ N(0, 1), rounded to 3 decimals."""
    rng = np.random.default_rng(seed)
    n = days * 24
    t = np.arange(n)
    daily = 0.5 * np.sin(2 * np.pi * (t - 8) / 24) + 0.25 * np.sin(4 * np.pi * (t - 3) / 24)
    weekly = np.where((t // 24) % 7 >= 5, -0.3, 0.0)
    z = rng.standard_normal(n)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.8 * e[i - 1] + 0.05 * z[i]
    demand = 1.5 + daily + weekly + e
    return "day,hour,demand\n" + "".join(f"{i // 24 + 1},{i % 24},{demand[i]:.3f}\n" for i in range(n))


if __name__ == "__main__":
    Path(__file__).with_name("demand.csv").write_text(demand_rows(), encoding="utf-8")
