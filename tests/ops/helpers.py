"""Reading a Prometheus exposition, and the requests the ops tests send."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb

PROMTOOL = shutil.which("promtool")
AS_OF = "2025-06-30"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def parse(text: str) -> tuple[set[str], Samples]:
    """The metric family names (with HELP) and each sample's value by name and labels."""
    families: set[str] = set()
    samples: Samples = defaultdict(float)
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] += sample.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def promtool_check(text: str, tmp: Path) -> str:
    """`promtool check metrics` on the exposition; returns its complaints (empty when clean)."""
    assert PROMTOOL, "promtool missing: run .ci/ensure-tools (Debian package prometheus)"
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def flagged_case(case_id: str, marker: str = "") -> case_pb2.Case:
    """Six concerns, three workers and an infant: cumulative-concerns, worker-churn and the shadow infant rule."""
    case = case_pb2.Case(case_id=case_id)
    case.child.birth_date = "2024-11-01"
    for i in range(6):
        case.concerns.add(id=f"{marker}c{i}", date=f"2025-0{i + 1}-10", agency="POLICE", category="NEGLECT")
    for i in range(3):
        case.allocations.add(id=f"{marker}a{i}", date=f"2025-0{i + 1}-01", worker_id=f"{marker}w{i}")
    return case


def request(case: case_pb2.Case, ruleset: str = "starter") -> pb.EvaluateRequest:
    return pb.EvaluateRequest(case=case, as_of=AS_OF, ruleset=ruleset)
