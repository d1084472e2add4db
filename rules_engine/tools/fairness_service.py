"""Read a running service's equality report: GetEqualityReport over the HTTP door as Connect JSON.

Connect's unary JSON (POST /<service>/<method>, a JSON body) needs no generated code, which this layer
may not import; the answer is the proto3 JSON of GetEqualityReportResponse, whose messages mirror
engine/equality.py's report dataclasses field for field (an absent field is a withheld number).
"""

from __future__ import annotations

import dataclasses
import json
import os
import ssl
import types
import typing
import urllib.error
import urllib.request
from typing import Any

from rules_engine.engine.equality import EqualityReport
from rules_engine.tools.fairness_report import Context

PATH = "/rules_engine.v1.RulesEngineService/GetEqualityReport"
TOKEN_VARIABLE = "RULES_ENGINE_TOKEN"  # an operator's bearer token; never an argument (argv is visible)
CA_VARIABLE = "RULES_ENGINE_CA_FILE"  # a CA bundle for an https:// door with a private CA
TIMEOUT_SECONDS = 30.0


class ServiceError(Exception):
    """The service could not be asked, or refused (its status and message, never the token)."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _convert(kind: Any, value: Any) -> Any:
    """A proto3 JSON value as `kind` (a report dataclass, tuple, optional or scalar)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(inner, value)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value or ())
        # An interval: {"low": .., "high": ..} in the message, (low, high) in the report.
        return (float(value.get("low", 0.0)), float(value.get("high", 0.0)))
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = {}
        for field in dataclasses.fields(kind):
            raw = value.get(_camel(field.name), value.get(field.name))
            if raw is None and field.default is not dataclasses.MISSING:
                fields[field.name] = field.default
            else:
                fields[field.name] = _convert(hints[field.name], raw)
        constructor: Any = kind
        return constructor(**fields)
    if kind is int:
        return int(value or 0)  # proto3 JSON writes int64 as a string
    if kind is float:
        return float(value or 0.0)
    if kind is bool:
        return bool(value)
    return "" if value is None else str(value)


def report_from_json(document: dict[str, Any]) -> EqualityReport:
    built: EqualityReport = _convert(EqualityReport, document)
    return built


def fetch_report(url: str, threshold: int, ruleset: str | None) -> tuple[EqualityReport, Context]:
    """GetEqualityReport from the HTTP door at `url`, with the operator token from RULES_ENGINE_TOKEN."""
    token = os.environ.get(TOKEN_VARIABLE, "")
    body = json.dumps({"ruleset": ruleset or "", "threshold": threshold}).encode()
    headers = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url.rstrip("/") + PATH, data=body, headers=headers, method="POST")
    context = ssl.create_default_context(cafile=os.environ.get(CA_VARIABLE) or None)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as answer:
            document = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            said = f"{error.get('code', exc.code)}: {error.get('message', '')}"
        except ValueError:
            said = str(exc.code)
        raise ServiceError(f"{url}: GetEqualityReport refused ({said})") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ServiceError(f"{url}: GetEqualityReport failed ({exc})") from None
    return report_from_json(document), Context(f"the service at {url} (its stored aggregates)")
