"""Shared by every test folder."""

import os

# `serve` opens the HTTP door on 8080 by default; servers that tests start are gRPC-only unless
# a test asks for the HTTP door (tests/e2e/test_http_door.py passes --http-port on a free port),
# so that servers started side by side do not contend for one fixed port.
os.environ.setdefault("RULES_ENGINE_HTTP_PORT", "0")
