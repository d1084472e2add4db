"""The e2e fixtures (a real in-process server on a free port) for the reliability tests."""

from tests.e2e.conftest import running, service, start_server, stub

__all__ = ["running", "service", "start_server", "stub"]
