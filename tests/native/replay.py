"""Replay one case the differential test saved: the Python path and the compiled core, side by side.

    .venv/bin/python -m tests.native.replay /tmp/rules-engine-differential/case-....json safeguarding [reference]

Prints the first differing field (or that both agree), what each path raised or declined, and
both Outcomes in full.
"""

from __future__ import annotations

import datetime as dt
import json
import pprint
import sys
from pathlib import Path
from typing import Any

from rules_engine.case.dates import latest_date
from rules_engine.config import MatcherName
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import CaseError
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from tests.native.cases import RULESETS
from tests.native.compare import first_difference


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    saved = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    matcher: MatcherName = "reference" if argv[2:] == ["reference"] else "durable"
    prepared = PreparedRuleset(compile_ruleset(RULESETS / argv[1]), matcher=matcher)
    as_of, today = dt.date.fromisoformat(saved["asOf"]), dt.date.fromisoformat(saved["today"])
    message = requests.case_from_json(saved["case"])
    data = message.SerializeToString(deterministic=True)
    expected: Any
    try:
        expected = prepared.evaluate(requests.case_from_proto(message, today), as_of)
    except CaseError as exc:
        expected = f"CaseError: {exc}"
    got = prepared.evaluate_encoded(data, as_of, latest_date(today))
    print(f"ruleset {argv[1]} ({matcher}), as_of {as_of}, today {today}, {len(data)} bytes")
    if isinstance(expected, str) or got is None:
        print(f"Python path: {expected if isinstance(expected, str) else 'an Outcome'}")
        print(f"compiled core: {'declined (None)' if got is None else 'an Outcome'}")
    else:
        print(f"first difference: {first_difference(expected, got) or 'none, the two agree'}")
    for name, outcome in (("Python path", expected), ("compiled core", got)):
        print(f"\n--- {name} ---")
        pprint.pprint(outcome, width=120)
    prepared.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
