"""Echo servers for bench/asyncore: ``python servers.py IMPL MODEL PORT [--poll]``.

IMPL is ``pyasyncore`` (the PyPI ``pyasyncore``/``pyasynchat`` packages, loaded from their files
so Python 3.11's own deprecated copies do not shadow them) or ``portside`` (``portside.asyncore``
on its default loop, ``PORTSIDE_LOOP`` to choose). MODEL is ``dispatcher`` (the documentation's
``dispatcher_with_send`` echo) or ``chat`` (an ``async_chat`` line echo). ``--poll`` passes
``use_poll=True`` to ``loop()``. Both listen with a backlog of 4096 so the kernel queue is not what
is measured.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from types import ModuleType


def load_pypi(distribution: str) -> ModuleType:
    """Import the top-level package of ``distribution`` from its installed files."""
    dist = importlib.metadata.distribution(distribution)
    init = next(f for f in dist.files or () if f.name == "__init__.py")
    path = str(dist.locate_file(init))
    name = init.parts[0]
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[os.path.dirname(path)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    impl, model, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    use_poll = "--poll" in sys.argv
    if impl == "pyasyncore":
        asyncore: ModuleType = load_pypi("pyasyncore")
        asynchat: ModuleType = load_pypi("pyasynchat")
    else:
        from portside import asynchat as portside_asynchat
        from portside import asyncore as portside_asyncore

        asyncore, asynchat = portside_asyncore, portside_asynchat

    class EchoHandler(asyncore.dispatcher_with_send):  # type: ignore[name-defined, misc]
        def handle_read(self) -> None:
            data = self.recv(8192)
            if data:
                self.send(data)

    class LineEcho(asynchat.async_chat):  # type: ignore[name-defined, misc]
        def __init__(self, sock: object) -> None:
            asynchat.async_chat.__init__(self, sock)
            self.set_terminator(b"\n")
            self.buffer: list[bytes] = []

        def collect_incoming_data(self, data: bytes) -> None:
            self.buffer.append(data)

        def found_terminator(self) -> None:
            self.buffer.append(b"\n")
            self.push(b"".join(self.buffer))
            self.buffer = []

    handler = EchoHandler if model == "dispatcher" else LineEcho

    class Server(asyncore.dispatcher):  # type: ignore[name-defined, misc]
        def __init__(self) -> None:
            asyncore.dispatcher.__init__(self)
            self.create_socket()
            self.set_reuse_addr()
            self.bind(("127.0.0.1", port))
            self.listen(4096)

        def handle_accepted(self, sock: object, addr: object) -> None:
            handler(sock)

    Server()
    print("ready", flush=True)
    try:
        asyncore.loop(timeout=30.0, use_poll=use_poll)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
