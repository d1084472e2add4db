"""_core.named: measured values and outcomes by name, written into a copy of the names' dict (on
CPython 3.11 straight into its table), equal to dict(zip(names, values)) and an ordinary dict
after."""

from __future__ import annotations

from typing import Any

import pytest


def test_named_is_dict_of_zip(core: Any) -> None:
    names = [f"measure_{i}" for i in range(200)]
    template = dict.fromkeys(names)
    values: list[Any] = [i if i % 3 else None for i in range(200)]
    values[7] = 2.5
    out = core.named(template, values)
    assert out == dict(zip(names, values, strict=True)) and list(out) == names
    assert template == dict.fromkeys(names)  # the template is untouched
    out["later"] = 1
    del out["measure_3"]
    out["measure_3"] = 9
    assert out["measure_3"] == 9 and out["measure_7"] == 2.5 and len(out) == 201


def test_named_of_other_dicts(core: Any) -> None:
    assert core.named({}, []) == {}
    template: dict[Any, None] = dict.fromkeys([1, "b"])  # not all str keys: set one by one
    assert core.named(template, [True, None]) == {1: True, "b": None}
    with pytest.raises(ValueError):
        core.named(template, [1])
