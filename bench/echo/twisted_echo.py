"""Twisted Protocol echo server with the default reactor (epoll on Linux).

Usage: python twisted_echo.py PORT

Listens on 127.0.0.1:PORT; ``dataReceived`` writes the data straight back. Runs until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

from twisted.internet import protocol


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        transport: Any = self.transport  # zope interfaces confuse type checkers
        transport.write(data)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: twisted_echo.py PORT")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from twisted.internet import reactor as default_reactor

    reactor: Any = default_reactor  # installs the platform default: epoll on Linux
    reactor.listenTCP(int(sys.argv[1]), protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
