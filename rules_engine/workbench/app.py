"""The workbench's ASGI app for everything under /workbench: the API behind the server's admission
check, the static pages without one.

Who may call the API is the server's business (server/security.py, through the `admit` it
hands in): with a clients file set it needs the `operator` role, by bearer token or certificate,
and is refused as the Connect door refuses: 401 without known credentials, 403 for another role.
The pages themselves hold no data, so they load without a token and ask for one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from rules_engine.engine.engine import Engine, utcnow
from rules_engine.service.outcomes import Code, Refusal
from rules_engine.workbench.api import API_PREFIX, WorkbenchApi, WorkbenchOptions
from rules_engine.workbench.asgi import SECURITY_HEADERS, ApiError, Receive, Scope, Send, answer, answer_error
from rules_engine.workbench.static import PREFIX, STATIC_DIR, StaticFiles

ROOT = PREFIX.rstrip("/")
# Why a call may not go on (None: it may), from the request's headers and TLS extension.
Admit = Callable[[Scope], Refusal | None]
_STATUSES = {Code.UNAUTHENTICATED: 401, Code.PERMISSION_DENIED: 403}


class Workbench:
    """/workbench -> /workbench/; /workbench/api/... -> the API (admitted first); else the pages."""

    def __init__(self, api: WorkbenchApi, static: StaticFiles, admit: Admit | None = None) -> None:
        self.api = api
        self.static = static
        self.admit = admit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == ROOT:
            # Relative links in the pages (js/api.js, api/rulesets) need the trailing slash.
            location = PREFIX.encode() + (b"?" + scope["query_string"] if scope.get("query_string") else b"")
            await answer(send, 308, b"", b"text/plain", [(b"location", location), *SECURITY_HEADERS])
            return
        if path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"):
            refused = self.admit(scope) if self.admit is not None else None
            if refused is not None:
                status = _STATUSES.get(refused.code, 403)
                challenge = [(b"www-authenticate", b'Bearer realm="rules-engine workbench"')] if status == 401 else []
                await answer_error(send, ApiError(status, refused.message, headers=challenge))
                return
            await self.api(scope, receive, send)
            return
        await self.static(scope, send)


def build_workbench(
    engine: Engine,
    options: WorkbenchOptions | None = None,
    admit: Admit | None = None,
    static_dir: Path = STATIC_DIR,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Workbench:
    """The workbench over an engine's registry and store; `admit` None: the API is open (no clients file)."""
    return Workbench(WorkbenchApi(engine, options, clock), StaticFiles(static_dir), admit)
