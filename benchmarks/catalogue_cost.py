"""What a ruleset change costs per call: the same code evaluating one case under two versions of a ruleset.

The engine benchmark holds the ruleset fixed and times the code; this holds the code fixed and
times the rules. Each version runs in its own process, alternately, `--rounds` times; CPU time
per evaluation (conversion included, as the server does it) is printed for each run.

Run: `python benchmarks/catalogue_cost.py --base a346625 [--ruleset safeguarding] [--facts 20,200]`
(`--base` is a git revision; its rulesets are taken with `git archive`, the head is the working tree).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(ruleset: Path, facts: int, evaluations: int) -> str:
    from rules_engine.engine.evaluator import PreparedRuleset
    from rules_engine.policy.compiler import compile_ruleset
    from rules_engine.service import requests
    from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

    prepared = PreparedRuleset(compile_ruleset(ruleset))
    message = requests.case_from_json(sized_case(facts))
    day = LONG_TIMELINE_END
    outcome = prepared.evaluate(requests.case_from_proto(message, day), day)
    for _ in range(50):
        prepared.evaluate(requests.case_from_proto(message, day), day)
    start = time.process_time()
    for _ in range(evaluations):
        prepared.evaluate(requests.case_from_proto(message, day), day)
    micros = 1e6 * (time.process_time() - start) / evaluations
    compiled = prepared.ruleset
    return (
        f"{micros:7.0f} us/evaluation  {facts:>5} facts  {len(compiled.rules)} rules, "
        f"{len(compiled.measures)} measures, {len(outcome.flags)} flags"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision whose rulesets are the baseline")
    parser.add_argument("--ruleset", default="safeguarding")
    parser.add_argument("--facts", default="20,200")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--child", nargs=2, metavar=("RULESET_DIR", "FACTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(Path(args.child[0]), int(args.child[1]), args.evaluations), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", args.base, f"rulesets/{args.ruleset}"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        versions = {args.base: Path(tmp) / "rulesets" / args.ruleset, "head": ROOT / "rulesets" / args.ruleset}
        for round_ in range(1, args.rounds + 1):
            for facts in (int(f) for f in args.facts.split(",")):
                for name, directory in versions.items():
                    line = subprocess.run(
                        [sys.executable, __file__, "--base", args.base, "--evaluations", str(args.evaluations),
                         "--child", str(directory), str(facts)],
                        check=True, capture_output=True, text=True,
                    ).stdout.strip()  # fmt: skip
                    print(f"round {round_}  {name:<8} {line}", flush=True)


if __name__ == "__main__":
    main()
