"""asyncore's ``file_wrapper``: a file descriptor that answers the socket calls a dispatcher
makes (``file_dispatcher`` serves pipes and terminals through it)."""

from __future__ import annotations

import os
import socket
import warnings
from typing import Any

__all__ = ["file_wrapper"]


class file_wrapper:
    """Makes a file descriptor look like a socket (recv/send/close/fileno) for dispatchers."""

    def __init__(self, fd: int) -> None:
        self.fd = os.dup(fd)

    def __del__(self) -> None:
        if self.fd >= 0:
            warnings.warn(f"unclosed file {self!r}", ResourceWarning, source=self, stacklevel=1)
        self.close()

    def recv(self, *args: Any) -> bytes:
        """Read from the descriptor."""
        return os.read(self.fd, *args)

    def send(self, *args: Any) -> int:
        """Write to the descriptor."""
        return os.write(self.fd, *args)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int:
        """Only ``SO_ERROR`` (always 0), which the dispatcher asks for.

        Any other option raises ``NotImplementedError``, as asyncore's ``file_wrapper`` does.
        """
        if level == socket.SOL_SOCKET and optname == socket.SO_ERROR and not buflen:
            return 0
        raise NotImplementedError("Only asyncore specific behaviour implemented.")

    read = recv
    write = send

    def close(self) -> None:
        """Close the descriptor (once)."""
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        os.close(fd)

    def fileno(self) -> int:
        """The descriptor."""
        return self.fd
