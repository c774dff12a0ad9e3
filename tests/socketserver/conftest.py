"""The ``serve`` fixture: ``serve(server)`` runs ``serve_forever`` in a thread for the test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .support import JOIN_TIMEOUT, Serve


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(server)`` runs ``server.serve_forever()`` in a thread until the test ends."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(server: Any) -> Any:
        thread = threading.Thread(target=server.serve_forever, name="serving", daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(JOIN_TIMEOUT)
        server.server_close()
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"
