"""The core rounds rates, sums and ratios (round(x, 2), round(x, 1)) without round's decimal
conversion where the answer is plain (_core._round_float): held here to round itself, bit for
bit (the sign of a zero included), on the values measures give and on the hard ones beside a
half."""

from __future__ import annotations

import math
import random
from typing import Any


def _same(core: Any, x: float, ndigits: int) -> None:
    got, want = core.round_float(x, ndigits), round(x, ndigits)
    assert type(got) is float
    assert got.hex() == want.hex() and math.copysign(1.0, got) == math.copysign(1.0, want), (x, ndigits, got, want)


def test_rates_and_ratios_as_measures_give_them(core: Any) -> None:
    for count in range(0, 400):
        for days in range(365, 365 * 40, 97):
            _same(core, count / ((days) / 365.25), 2)
    for numerator in range(0, 200):
        for denominator in range(1, 120):
            _same(core, 100 * numerator / denominator, 1)
            _same(core, 100 * numerator / denominator, 2)


def test_values_beside_a_half_and_of_every_size(core: Any) -> None:
    generator = random.Random(18)
    values = [0.0, -0.0, 0.004, -0.004, 0.005, -0.005, 0.05, -0.05, 0.15, 2.675, 1.005, 1e9, -1e9, 1e300, -1e-300]
    values += [math.inf, -math.inf, math.nan]
    for _ in range(20000):
        k = generator.randrange(-(10**6), 10**6)
        for scale in (10.0, 100.0):
            half = (k + 0.5) / scale
            values += [half, math.nextafter(half, math.inf), math.nextafter(half, -math.inf), k / scale]
        values.append(generator.uniform(-1e6, 1e6))
        values.append(math.ldexp(generator.random(), generator.randrange(-60, 60)))
    for x in values:
        for ndigits in (1, 2):
            if math.isnan(x):
                assert math.isnan(core.round_float(x, ndigits))
            else:
                _same(core, x, ndigits)
