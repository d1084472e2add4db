"""The workbench's JSON API under /workbench/api/, read-only, over the running service's rulesets.

    GET  rulesets                        the catalogue (catalogue.py)
    GET  samples, samples/<name>         synthetic cases to try (samples.py)
    POST evaluate                        a pasted case's flags (cases.py, trial.py)
    POST timeline                        its replay as a Vega-Lite chart (timeline.py)
    GET  timeline/stored/<case_id>       the same for a stored case, with what was recorded
    POST impact                          an edit's impact over a caseload (edits.py, impact.py)
    GET  equality?ruleset=&threshold=    the equality monitoring report of the stored counters (equality.py)

Rulesets are leased from the server's registry, so the workbench evaluates exactly the versions
the service serves; nothing is written to the store. Evaluation, replays and previews run in a
thread, off the event loop the HTTP door shares with the Connect door, and one impact preview
runs at a time per process. One log line per call: the endpoint, status, duration, case id or
count; never a case's content or an error's text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules_engine.engine.engine import Engine, utcnow
from rules_engine.errors import (
    CaseError,
    DiffInputError,
    FieldViolation,
    RuleFileErrors,
    RulesetNotFoundError,
    StoreUnavailableError,
)
from rules_engine.service import requests
from rules_engine.service.outcomes import STORE_UNAVAILABLE, invalid_message, log_failure
from rules_engine.tools.diff import materialise
from rules_engine.tools.fairness_report import Context
from rules_engine.workbench import catalogue, edits, equality, impact, samples, timeline, trial
from rules_engine.workbench.asgi import ApiError, Receive, Scope, Send, answer_error, answer_json, read_json
from rules_engine.workbench.cases import read_as_of, read_case_request, text_field

log = logging.getLogger(__name__)

API_PREFIX = "/workbench/api/"
ENDPOINTS = frozenset({"rulesets", "samples", "evaluate", "timeline", "impact", "equality"})
# Decisions of a stored case listed beside its timeline, newest first.
STORED_DECISIONS = 100


@dataclass(frozen=True)
class WorkbenchOptions:
    # A case, as the API's own message bound (server/limits.py MAX_MESSAGE_BYTES).
    max_body_bytes: int = 16 * 1024 * 1024
    # An impact preview: the edited files and up to impact.MAX_CASELOAD_LINES cases (about 3 KB each).
    max_impact_bytes: int = 64 * 1024 * 1024
    # Whether an impact preview may name directories or git revisions on this server
    # ({"base", "head"}, as `rules-engine diff` takes them); off: only uploaded files.
    allow_paths: bool = False


Handler = Callable[[], dict[str, Any]]


class WorkbenchApi:
    """The API's routes over an Engine's registry and store."""

    def __init__(
        self,
        engine: Engine,
        options: WorkbenchOptions | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.options = options or WorkbenchOptions()
        self._clock = clock
        self._catalogue = catalogue.CatalogueCache()
        self._previewing = threading.Semaphore(1)

    def today(self) -> dt.date:
        return self._clock().date()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        name = scope["path"][len(API_PREFIX) :].split("/", 1)[0]
        name = name if name in ENDPOINTS else "unknown"  # a path is the caller's text: only known names are logged
        context: dict[str, Any] = {}
        status = 500
        try:
            status, document, context = await self._route(scope, receive)
            await answer_json(send, status, document)
        except ApiError as refused:
            status = refused.status
            await answer_error(send, refused)
        except Exception as exc:
            mapped = _mapped(exc, name)
            status = mapped.status
            await answer_error(send, mapped)
        finally:
            extra = {"method": f"workbench {name}", "code": str(status), **context}
            log.info("workbench call", extra={**extra, "duration_ms": round((time.perf_counter() - started) * 1000, 3)})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, Any, dict[str, Any]]:
        method, path = scope["method"], scope["path"][len(API_PREFIX) :]
        query = urllib.parse.parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        gets: dict[str, Handler] = {
            "rulesets": self.rulesets,
            "samples": lambda: {"samples": samples.listing()},
            "equality": lambda: self.equality(query),
        }
        posts = {"evaluate": self.evaluate, "timeline": self.timeline, "impact": self.impact}
        if path in gets or path.startswith(("samples/", "timeline/stored/")):
            _allow(method, "GET")
            if path.startswith("samples/"):
                return 200, await asyncio.to_thread(self.sample, path.removeprefix("samples/")), {}
            if path.startswith("timeline/stored/"):
                case_id = path.removeprefix("timeline/stored/")
                stored = await asyncio.to_thread(self.stored_timeline, case_id, query)
                return 200, stored, {"case_id": stored["case_id"]}
            return 200, await asyncio.to_thread(gets[path]), {}
        if path in posts:
            _allow(method, "POST")
            limit = self.options.max_impact_bytes if path == "impact" else self.options.max_body_bytes
            body = await read_json(scope, receive, limit)
            if path == "impact":
                return 200, *await self._preview(body)
            document = await asyncio.to_thread(posts[path], body)
            return 200, document, {"case_id": document["case_id"], "ruleset": document["ruleset"]}
        raise ApiError(404, f"no such API path: {API_PREFIX}{path}")

    # -- the endpoints, each run in a thread -----------------------------------------------------

    def rulesets(self) -> dict[str, Any]:
        registry = self.engine.registry
        statuses = {s.name: s for s in registry.statuses()}
        entries = []
        for name in registry.names():
            try:
                with registry.lease(name) as prepared:
                    entries.append(self._catalogue.entry(prepared, statuses.get(name)))
            except RulesetNotFoundError:
                continue  # removed by a reload meanwhile
        return {"rulesets": entries}

    def sample(self, name: str) -> dict[str, Any]:
        if name not in samples.BY_NAME:
            known = ", ".join(samples.BY_NAME)
            raise ApiError(404, f"no sample named {name[:64]!r}; one of {known}")
        case, as_of = samples.made(name)
        return {"name": name, "case": case, "as_of": as_of.isoformat()}

    def equality(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """The report GetEqualityReport gives: of one ruleset (or every one), at the threshold asked."""
        threshold = equality.read_threshold(query.get("threshold", [None])[0])
        name = query.get("ruleset", [""])[0] or None
        built = self.engine.equality_report(name, threshold)
        titles: dict[tuple[str, str], str] = {}
        for ruleset in {version.ruleset for version in built.versions}:
            try:
                with self.engine.registry.lease(ruleset) as prepared:
                    titles.update(((ruleset, rule.id), rule.title) for rule in prepared.ruleset.rules)
            except RulesetNotFoundError:
                continue  # counted, no longer loaded: its rules go by their ids
        return equality.document(built, Context(equality.SOURCE, titles=titles), name)

    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        asked = read_case_request(body, self.today())
        with self.engine.registry.lease(asked.ruleset) as prepared:
            return trial.evaluate(prepared, asked.case, asked.as_of)

    def timeline(self, body: dict[str, Any]) -> dict[str, Any]:
        violations: list[FieldViolation] = []
        try:
            step = timeline.read_step(body.get("step"))
        except CaseError as exc:
            violations.extend(exc.violations)
        try:
            asked = read_case_request(body, self.today())
        except CaseError as exc:
            raise CaseError([*violations, *exc.violations]) from None
        if violations:
            raise CaseError(violations)
        last = asked.as_of if asked.as_of_given else None
        with self.engine.registry.lease(asked.ruleset) as prepared:
            return timeline.timeline(prepared, asked.case, self.today(), step, last)

    def stored_timeline(self, case_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        case_id = requests.case_id_from_text(case_id)
        step = timeline.read_step(query.get("step", [None])[0])
        store = self.engine.store
        case = store.load_case(case_id)
        if case is None:
            raise ApiError(404, f"no case {case_id!r} is stored on this server")
        with self.engine.registry.lease(query.get("ruleset", [""])[0] or None) as prepared:
            drawn = timeline.timeline(prepared, case, self.today(), step)
        drawn["recorded"] = timeline.recorded_json(
            store.chronology(case_id), store.decisions(case_id, STORED_DECISIONS)
        )
        return drawn

    async def _preview(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        # One preview at a time per process: each holds the GIL for seconds, and the Connect door
        # answers from the same process meanwhile.
        if not self._previewing.acquire(blocking=False):
            message = "another impact preview is running on this server; try again in a moment"
            raise ApiError(429, message, headers=[(b"retry-after", b"5")])
        try:
            document = await asyncio.to_thread(self.impact, body)
        finally:
            self._previewing.release()
        return document, {"cases": document["caseload"], "ruleset": ",".join(document["rulesets"])}

    def impact(self, body: dict[str, Any]) -> dict[str, Any]:
        violations: list[FieldViolation] = []
        moment = read_as_of(text_field(body, "as_of", violations), violations)
        as_of = moment.date() if moment is not None else self.today()
        paths = "base" in body or "head" in body
        files: dict[Any, str] = {}
        name = text_field(body, "ruleset", violations)
        if paths and not self.options.allow_paths:
            # 400, not 403: the pages keep 401 and 403 for credentials (a token dialog).
            refused = "not allowed on this server (--workbench-paths); upload the edited files instead"
            raise CaseError([FieldViolation(field, refused) for field in ("base", "head") if field in body])
        if not paths:
            if not name:
                violations.append(FieldViolation("ruleset", "required: the served ruleset the files edit"))
            try:
                files = edits.read_files(body.get("files"))
            except CaseError as exc:
                violations.extend(exc.violations)
        try:
            cases = impact.read_caseload(body.get("caseload"), as_of)
        except CaseError as exc:
            violations.extend(exc.violations)
        if violations:
            raise CaseError(violations)
        if paths:
            return self._impact_of_paths(body, cases, as_of)
        with self.engine.registry.lease(name) as prepared:
            directory = impact.served_directory(prepared.ruleset)
        with edits.edited_copy(directory, files) as head:
            prefix = f"{head.name}/"
            warnings = impact.check_and_test(head, prefix)
            try:
                return impact.preview(directory, head, cases, as_of, warnings)
            except RuleFileErrors as exc:
                raise impact.rule_file_problems(exc, prefix) from None

    def _impact_of_paths(self, body: dict[str, Any], cases: list[Any], as_of: dt.date) -> dict[str, Any]:
        violations: list[FieldViolation] = []
        base, head = text_field(body, "base", violations, 1024), text_field(body, "head", violations, 1024)
        for field, value in (("base", base), ("head", head)):
            if not value:
                violations.append(FieldViolation(field, "required: a rulesets directory or git REV:path"))
        if violations:
            raise CaseError(violations)
        with materialise(base) as base_dir, materialise(head) as head_dir:
            if not Path(base_dir).is_dir():
                raise CaseError([FieldViolation("base", "not a directory on this server")])
            warnings = impact.check_and_test(head_dir, "")
            try:
                return impact.preview(base_dir, head_dir, cases, as_of, warnings)
            except RuleFileErrors as exc:
                raise impact.rule_file_problems(exc) from None


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise ApiError(405, f"use {allowed} here", headers=[(b"allow", allowed.encode())])


def _mapped(exc: Exception, name: str) -> ApiError:
    """The refusal an exception from an endpoint becomes, as the API's doors map them (outcomes.py)."""
    if isinstance(exc, CaseError):
        return ApiError(400, invalid_message("request", exc.violations), violations=exc.violations)
    if isinstance(exc, RulesetNotFoundError):
        return ApiError(404, str(exc) or "ruleset not found")
    if isinstance(exc, StoreUnavailableError):
        log.warning("workbench %s: %s", name, exc)
        return ApiError(503, STORE_UNAVAILABLE)
    if isinstance(exc, RuleFileErrors):
        return impact.rule_file_problems(exc)
    if isinstance(exc, DiffInputError):
        return ApiError(400, str(exc))
    log_failure(f"workbench {name}", exc)
    return ApiError(500, "internal error")
