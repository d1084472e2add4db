"""Report a rule-test run: the coverage table, the uncovered rules and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rules_engine.tools.ruletest import RuleTestRun


def coverage_lines(run: RuleTestRun) -> list[str]:
    """A plain-text table: one row per rule, whether tests saw it raised and not raised."""
    if not run.coverage:
        return []
    width = max(len(f"{c.ruleset}/{c.rule_id}") for c in run.coverage)
    lines = [f"{'rule':<{width}}  {'raised':>6}  {'not raised':>10}  covered"]
    for c in run.coverage:
        mark = "yes" if c.covered else "NO"
        lines.append(f"{c.ruleset + '/' + c.rule_id:<{width}}  {c.raised:>6}  {c.not_raised:>10}  {mark}")
    uncovered = [c for c in run.coverage if not c.covered]
    covered = len(run.coverage) - len(uncovered)
    lines.append(f"rule coverage: {run.coverage_percent:.1f}% ({covered} of {len(run.coverage)} rules seen both ways)")
    for c in uncovered:
        missing = " and ".join(word for word, seen in (("raised", c.raised), ("not raised", c.not_raised)) if not seen)
        lines.append(f"uncovered: {c.ruleset}/{c.rule_id}: no test saw it {missing}")
    return lines


def write_junit(run: RuleTestRun, path: Path) -> None:
    """JUnit XML: a testsuite per test file, a testcase per test, a failure element per failing test."""
    suites = ET.Element("testsuites", tests=str(len(run.results) + len(run.errors)), failures=str(run.failed))
    by_file: dict[str, ET.Element] = {}
    for result in run.results:
        suite = by_file.get(result.file)
        if suite is None:
            suite = by_file[result.file] = ET.SubElement(suites, "testsuite", name=result.file)
        case = ET.SubElement(suite, "testcase", name=result.name, classname=result.file.replace("/", "."))
        if result.failures:
            failure = ET.SubElement(case, "failure", message=result.failures[0])
            failure.text = "\n".join(result.failures)
    if run.errors:
        suite = ET.SubElement(suites, "testsuite", name="rule files")
        for error in run.errors:
            case = ET.SubElement(suite, "testcase", name=str(error.position), classname=error.position.file)
            ET.SubElement(case, "error", message=str(error)).text = str(error)
    for suite in suites:
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    ET.indent(suites)
    path.write_bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n")
