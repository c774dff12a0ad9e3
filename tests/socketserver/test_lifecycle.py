"""The server lifecycle: hooks called when the stdlib calls them, shutdown without polling,
``handle_request`` and its timeout, ``service_actions``, restarting, statistics."""

from __future__ import annotations

import socket
import socketserver as stdlib
import threading
import time
from typing import Any

import pytest

from portside import socketserver as ours

from .support import CLIENT_TIMEOUT, JOIN_TIMEOUT, Serve, connect, read_all

HOOKS = [
    "server_bind",
    "server_activate",
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_error",
    "handle_timeout",
    "server_close",
]


def recording(module: Any, base: type) -> tuple[type, list[str]]:
    """``base`` with every documented hook logged (verify_request refuses ``deny``)."""
    calls: list[str] = []

    def logged(name: str) -> Any:
        original = getattr(base, name)

        def hook(self: Any, *args: Any) -> Any:
            calls.append(name)
            if name == "handle_error":
                return None  # quiet
            result = original(self, *args)
            if name == "verify_request":
                request = args[0]
                peeked = request.recv(4, socket.MSG_PEEK)
                return peeked != b"deny"
            return result

        return hook

    namespace = {name: logged(name) for name in HOOKS}
    return type("Recording" + base.__name__, (base,), namespace), calls


class Handler:
    def handle(self: Any) -> None:
        line = self.rfile.readline()
        if line == b"boom\n":
            raise ValueError("boom")
        self.wfile.write(line)


def _scenario(module: Any, base: type, **options: Any) -> list[str]:
    server_class, calls = recording(module, base)
    handler = type("H", (Handler, module.StreamRequestHandler), {})
    with server_class(("127.0.0.1", 0), handler, **options) as server:
        server.timeout = 0.05
        server.handle_request()  # nobody comes: handle_timeout
        for line in (b"hello\n", b"boom\n", b"deny\n"):
            with socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as c:
                c.sendall(line)
                server.handle_request()
                read_all(c)
    return calls


@pytest.mark.parametrize("base", ["TCPServer", "ThreadingTCPServer", "GreenTCPServer"])
def test_hooks_are_called_as_the_stdlib_calls_them(base: str, loop_kind: str) -> None:
    # a green server's order is deterministic: the stdlib's own sequential order
    stdlib_base = "ThreadingTCPServer" if base == "ThreadingTCPServer" else "TCPServer"
    expected = _scenario(stdlib, getattr(stdlib, stdlib_base))
    got = _scenario(ours, getattr(ours, base), event_loop=loop_kind)
    if base == "ThreadingTCPServer":  # thread timing interleaves the per-request hooks
        assert sorted(got) == sorted(expected)
    else:
        assert got == expected
    assert expected[:3] == ["server_bind", "server_activate", "handle_timeout"]


def test_shutdown_is_prompt_and_serve_forever_can_run_again(loop_kind: str) -> None:
    class Echo(ours.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    with ours.TCPServer(("127.0.0.1", 0), Echo, event_loop=loop_kind) as server:
        for _ in range(2):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
            thread.start()
            with connect(server.server_address) as client:
                client.sendall(b"hi\n")
                assert client.recv(10) == b"hi\n"
            started = time.monotonic()
            server.shutdown()
            assert time.monotonic() - started < 0.5  # no polling: the stdlib takes up to 30 s
            thread.join(JOIN_TIMEOUT)
            assert not thread.is_alive()


def test_shutdown_before_serve_forever_starts_still_stops_it(loop_kind: str) -> None:
    with ours.TCPServer(("127.0.0.1", 0), ours.BaseRequestHandler, event_loop=loop_kind) as s:
        stopper = threading.Thread(target=s.shutdown)
        stopper.start()  # waits, as the stdlib's, until a serve_forever has run and stopped
        time.sleep(0.05)
        assert stopper.is_alive()
        s.serve_forever()  # sees the request at once and returns
        stopper.join(JOIN_TIMEOUT)
        assert not stopper.is_alive()


def test_service_actions_runs_every_poll_interval_when_overridden(loop_kind: str) -> None:
    ticks = threading.Semaphore(0)

    class Ticking(ours.TCPServer):
        def service_actions(self) -> None:
            ticks.release()

    with Ticking(("127.0.0.1", 0), ours.BaseRequestHandler, event_loop=loop_kind) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.02,))
        thread.start()
        try:
            for _ in range(3):
                assert ticks.acquire(timeout=CLIENT_TIMEOUT)
        finally:
            server.shutdown()
            thread.join(JOIN_TIMEOUT)


def test_an_exception_outside_the_handler_ends_serve_forever(loop_kind: str) -> None:
    class Picky(ours.TCPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            raise LookupError("verify_request failed")

    with Picky(("127.0.0.1", 0), ours.BaseRequestHandler, event_loop=loop_kind) as server:
        failure: list[BaseException] = []

        def run() -> None:
            try:
                server.serve_forever()
            except LookupError as exc:
                failure.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        connect(server.server_address).close()
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
        assert [str(exc) for exc in failure] == ["verify_request failed"]


def test_green_handle_request_serves_one_request_to_the_end(loop_kind: str) -> None:
    class Two(ours.StreamRequestHandler):
        def handle(self) -> None:
            for _ in range(2):
                self.wfile.write(self.rfile.readline().upper())

    with ours.GreenTCPServer(("127.0.0.1", 0), Two, event_loop=loop_kind) as server:
        client = connect(server.server_address)
        reader = threading.Thread(target=server.handle_request)
        reader.start()
        client.sendall(b"a\n")
        assert client.recv(10) == b"A\n"
        assert reader.is_alive()  # still serving this request
        client.sendall(b"b\n")
        assert client.recv(10) == b"B\n"
        reader.join(JOIN_TIMEOUT)
        assert not reader.is_alive()
        client.close()


def test_statistics_count_requests_and_bytes(loop_kind: str, serve: Serve) -> None:
    class Echo(ours.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line)

    server = serve(ours.GreenTCPServer(("127.0.0.1", 0), Echo, event_loop=loop_kind))
    with connect(server.server_address) as client:
        client.sendall(b"12345\n")
        assert client.recv(10) == b"12345\n"
        stats = server.statistics()
        assert (stats.connections_open, stats.connections_total) == (1, 1)
        assert (stats.bytes_received, stats.bytes_sent) == (6, 6)


def test_unix_stream_server_leaves_its_socket_file_like_the_stdlib(
    tmp_path: Any, loop_kind: str
) -> None:
    path = tmp_path / "s.sock"
    with ours.UnixStreamServer(str(path), ours.BaseRequestHandler, event_loop=loop_kind):
        assert path.exists()
    assert path.exists()


def test_constructor_failure_closes_the_socket(loop_kind: str) -> None:
    with (
        ours.TCPServer(("127.0.0.1", 0), ours.BaseRequestHandler) as taken,
        pytest.raises(OSError),
    ):
        ours.TCPServer(taken.server_address, ours.BaseRequestHandler, event_loop=loop_kind)


def test_ssl_context_is_refused_for_datagrams() -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ValueError, match="datagram"):
        ours.UDPServer(("127.0.0.1", 0), ours.BaseRequestHandler, ssl_context=context)
