"""The workbench's pages: the files under rules_engine/workbench/static/, served at /workbench/.

Only regular files inside that directory are served, found by a path checked part by part (no
`..`, no hidden parts, no backslashes) and resolved again before reading, so nothing else on the
disk can be reached. The content type comes from a fixed table (module scripts must be
text/javascript; an unknown suffix is not served at all), every answer carries the
Content-Security-Policy that keeps the pages to this server, and each file has an ETag so a
browser revalidates cheaply. The pages hold no data: they are served without a token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rules_engine.workbench.asgi import SECURITY_HEADERS, Headers, Scope, Send, answer, header

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/workbench/"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".map": b"application/json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".woff2": b"font/woff2",
    ".txt": b"text/plain; charset=utf-8",
}
# The vendored libraries are pinned by the lockfile and change only with a release: a day.
# The pages' own files are revalidated on every load (a 304 while unchanged).
VENDOR_CACHE = b"public, max-age=86400"
OWN_CACHE = b"no-cache"
MAX_PATH_CHARS = 512


@dataclass(frozen=True)
class _File:
    body: bytes
    etag: bytes
    content_type: bytes
    cache: bytes


class StaticFiles:
    """Serves `root` at /workbench/; files are read from disk on each request (they are small),
    so `make setup` rebuilding the vendored files shows without a restart."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        self.root = root

    def locate(self, path: str) -> Path | None:
        """The file a request path names, or None: outside the directory, hidden, a directory, an
        unknown kind, or missing."""
        relative = path.removeprefix(PREFIX)
        if not relative or relative.endswith("/"):
            relative += INDEX
        if len(relative) > MAX_PATH_CHARS or "\\" in relative or "\x00" in relative or relative.startswith("/"):
            return None
        parts = PurePosixPath(relative).parts
        if any(part in (".", "..") or part.startswith(".") for part in parts) or ".." in relative.split("/"):
            return None
        if PurePosixPath(relative).suffix not in CONTENT_TYPES:
            return None
        root = self.root.resolve()
        candidate = root.joinpath(*parts).resolve()
        # After symbolic links are followed the file must still lie inside the directory.
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate

    def read(self, path: str) -> _File | None:
        found = self.locate(path)
        if found is None:
            return None
        try:
            body = found.read_bytes()
        except OSError:
            return None
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        vendor = path.removeprefix(PREFIX).startswith("vendor/")
        return _File(body, etag, CONTENT_TYPES[found.suffix], VENDOR_CACHE if vendor else OWN_CACHE)

    async def __call__(self, scope: Scope, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, b"the workbench's pages are read with GET\n", [(b"allow", b"GET, HEAD")])
            return
        found = self.read(path)
        if found is None:
            if not self.root.is_dir():
                await _plain(send, 404, b"the workbench's pages are not installed in this build\n")
            else:
                await _plain(send, 404, b"no such page\n")
            return
        headers: Headers = [*SECURITY_HEADERS, (b"etag", found.etag), (b"cache-control", found.cache)]
        sent = {tag.strip() for tag in (header(scope, b"if-none-match") or "").split(",")}
        if found.etag.decode() in sent or "*" in sent:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await answer(send, 200, found.body, found.content_type, headers, head=method == "HEAD")


async def _plain(send: Send, status: int, text: bytes, extra: Headers | None = None) -> None:
    await answer(send, status, text, b"text/plain; charset=utf-8", [*SECURITY_HEADERS, *(extra or [])])
