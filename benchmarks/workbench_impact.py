"""A 2,000-case impact preview in the workbench, driven in a real browser, timed.

    python benchmarks/workbench_impact.py [--cases 2000] [--runs 3]

One `rules-engine serve --plaintext` (the bundled rulesets, in-memory store, metrics off) on free
ports; Debian's Chromium (/usr/bin/chromium, headless) driven by Playwright opens
/workbench/impact.html as a policy officer would: the served `safeguarding` ruleset, an edited
`ruleset.yaml` (absence_conferences_checked 3 -> 6: an edit its own tests accept), a caseload
from `rules-engine synth --cases N --seed 1` (JSON lines, as of 2025-12-31), then "Preview the
impact". Each run is timed from the click to the results on the page: the page reading the files,
the upload, the server's check, the ruleset's own tests, both versions over every case, the
drill-down's explanations, and the page laying the answer out. The target is under 30 seconds
for 2,000 cases on the project's machine. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect, sync_playwright

from rules_engine.tools.synth import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TARGET_SECONDS = 30.0
AS_OF = "2025-12-31"
EDIT = ("absence_conferences_checked: 3", "absence_conferences_checked: 6")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    grpc_port, http_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--host", "127.0.0.1",
        "--port", str(grpc_port), "--http-port", str(http_port), "--metrics-port", "0",
        "--rulesets", str(ROOT / "rulesets"), "--default-ruleset", "safeguarding",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}/workbench/"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise SystemExit(f"serve exited early; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the workbench did not start; see {log}")
        time.sleep(0.2)


def edited_ruleset(directory: Path) -> Path:
    source = (ROOT / "rulesets" / "safeguarding" / "ruleset.yaml").read_text()
    old, new = EDIT
    if old not in source:
        raise SystemExit(f"rulesets/safeguarding/ruleset.yaml no longer has {old!r}; choose another edit")
    path = directory / "ruleset.yaml"
    path.write_text(source.replace(old, new, 1))
    return path


def caseload(directory: Path, cases: int) -> Path:
    path = directory / "caseload.jsonl"
    with path.open("w") as out:
        write_jsonl(out, cases, seed=1, as_of=dt.date.fromisoformat(AS_OF))
    return path


def preview_once(url: str, edited: Path, cases_file: Path, cases: int) -> dict[str, Any]:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "impact.html")
            page.wait_for_selector("body[data-ready]", state="attached")
            page.get_by_label("The ruleset you edited").select_option("safeguarding")
            page.get_by_label("Rule files").set_input_files(edited)
            page.get_by_label("Caseload file (JSON lines)").set_input_files(cases_file)
            expect(page.locator("#caseload-summary")).to_contain_text(f"{cases:,} case")
            page.get_by_label("Evaluate as of").fill(AS_OF)
            started = time.perf_counter()
            page.get_by_role("button", name="Preview the impact").click()
            page.wait_for_selector("#impact-results:not([hidden]), #impact-error:not([hidden])", timeout=300_000)
            wall = time.perf_counter() - started
            if page.locator("#impact-error").is_visible():
                raise SystemExit(f"the preview was refused: {page.locator('#impact-error').inner_text()}")
            summary = page.locator("#impact-summary").inner_text()
            if f"{cases:,} case" not in summary:
                raise SystemExit(f"the page did not evaluate {cases} cases: {summary}")
            return {
                "seconds": round(wall, 2),
                "page_seconds": float(page.locator("body").get_attribute("data-preview-seconds") or "nan"),
                "newly_flagged": int(page.locator("#total-newly .n").inner_text().replace(",", "")),
                "no_longer_flagged": int(page.locator("#total-gone .n").inner_text().replace(",", "")),
            }
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("needs Debian's chromium (.ci/ensure-tools installs it)")
    work = Path(tempfile.mkdtemp(prefix="workbench-impact-"))
    process, url = start_server(work / "serve.log")
    try:
        edited, cases_file = edited_ruleset(work), caseload(work, args.cases)
        caseload_bytes = cases_file.stat().st_size
        runs = [preview_once(url, edited, cases_file, args.cases) for _ in range(args.runs)]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if os.environ.get("KEEP_WORK") is None:
            shutil.rmtree(work, ignore_errors=True)
    median = statistics.median(run["seconds"] for run in runs)
    print(
        json.dumps(
            {
                "benchmark": "workbench impact preview in the browser",
                "cases": args.cases,
                "caseload_bytes": caseload_bytes,
                "edit": f"safeguarding ruleset.yaml {EDIT[0]} -> {EDIT[1].split(': ')[1]}",
                "runs": runs,
                "median_seconds": median,
                "target_seconds": TARGET_SECONDS,
                "within_target": median < TARGET_SECONDS,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
