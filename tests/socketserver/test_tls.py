"""TLS through ``ssl_context=``: every stream mode, handshakes off the serving loop."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from typing import Any

import pytest

from portside import Limits, socketserver

from .support import CLIENT_TIMEOUT, Serve, Upper, connect, read_all
from .support import STREAM_SERVERS as SERVERS


def _server_context(tls_files: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    return context


def _tls_client(tls_files: Any, address: Any) -> ssl.SSLSocket:
    raw = connect(address)
    return tls_files.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize("mode", list(SERVERS))
def test_tls_echo(mode: str, loop_kind: str, serve: Serve, tls_files: Any) -> None:
    server = serve(
        SERVERS[mode](
            ("127.0.0.1", 0),
            Upper,
            ssl_context=_server_context(tls_files),
            event_loop=loop_kind,
        )
    )
    with _tls_client(tls_files, server.server_address) as client:
        reader = client.makefile("rb")
        for word in (b"secret\n", b"another\n"):
            client.sendall(word)
            assert reader.readline() == word.upper()
        reader.close()
    server.shutdown()
    server.server_close()
    assert server.statistics().connections_total == 1


@pytest.mark.parametrize("mode", ["threading", "green"])
def test_a_silent_tls_client_does_not_hold_up_others(
    mode: str, loop_kind: str, serve: Serve, tls_files: Any
) -> None:
    limits = Limits(handshake_timeout=0.3)
    server = serve(
        SERVERS[mode](
            ("127.0.0.1", 0),
            Upper,
            ssl_context=_server_context(tls_files),
            limits=limits,
            event_loop=loop_kind,
        )
    )
    silent = connect(server.server_address)  # never says hello
    with _tls_client(tls_files, server.server_address) as client:
        client.sendall(b"meanwhile\n")
        assert client.recv(100) == b"MEANWHILE\n"
    started = time.monotonic()
    assert silent.recv(100) == b""  # dropped at the handshake timeout
    assert time.monotonic() - started < CLIENT_TIMEOUT
    silent.close()
    server.shutdown()  # settles the failed handshake's bookkeeping
    server.server_close()
    assert server.statistics().connection_errors == 1


def test_a_failed_handshake_on_a_plain_server_is_counted(
    loop_kind: str, serve: Serve, tls_files: Any
) -> None:
    limits = Limits(handshake_timeout=0.3)
    server = serve(
        socketserver.TCPServer(
            ("127.0.0.1", 0),
            Upper,
            ssl_context=_server_context(tls_files),
            limits=limits,
            event_loop=loop_kind,
        )
    )
    with connect(server.server_address) as plaintext:
        plaintext.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS: the handshake fails
        with contextlib.suppress(ConnectionResetError):  # an alert, then the close (or a reset)
            read_all(plaintext)
    with _tls_client(tls_files, server.server_address) as client:
        client.sendall(b"after\n")
        assert client.recv(100) == b"AFTER\n"
    assert server.statistics().connection_errors == 1


def test_ctrl_c_during_a_bridged_call_stops_the_loop_not_the_handler(
    loop_kind: str, tls_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt that lands while the loop runs a thread's socket call is the loop's.

    In thread mode with TLS, a handler thread's socket calls run on the serving loop; a
    Ctrl-C arriving meanwhile must end ``serve_forever`` (in the loop's thread), and the
    handler must get a connection error, not the KeyboardInterrupt.
    """
    from portside._socketserver import greensock

    handler_saw: list[BaseException] = []
    serving_raised: list[BaseException] = []

    class AskOption(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                self.request.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            except BaseException as exc:
                handler_saw.append(exc)

    def interrupted(channel: Any) -> Any:
        raise KeyboardInterrupt  # as if Ctrl-C landed here, on the loop's thread

    def serving() -> None:
        try:
            server.serve_forever()
        except BaseException as exc:
            serving_raised.append(exc)

    monkeypatch.setattr(greensock, "transport_socket", interrupted)
    server = socketserver.ThreadingTCPServer(
        ("127.0.0.1", 0), AskOption, ssl_context=_server_context(tls_files), event_loop=loop_kind
    )
    loop_thread = threading.Thread(target=serving, daemon=True)
    loop_thread.start()
    try:
        with _tls_client(tls_files, server.server_address) as client:
            loop_thread.join(CLIENT_TIMEOUT)
            if loop_thread.is_alive():  # the interrupt was lost: stop serving, then fail
                server.shutdown()
                loop_thread.join(CLIENT_TIMEOUT)
            client.close()
    finally:
        server.server_close()
    assert [type(exc) for exc in serving_raised] == [KeyboardInterrupt]
    assert [type(exc) for exc in handler_saw] == [ConnectionAbortedError]
