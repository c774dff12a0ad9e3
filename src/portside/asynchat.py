"""asynchat -- line- and count-oriented dispatchers -- on portside's engine.

The API and behaviour are those of Python 3.11's ``asynchat``: an :class:`async_chat` cuts its
input at a *terminator* (a bytes delimiter, a byte count, or None for "everything"), hands the
pieces to :meth:`~async_chat.collect_incoming_data` as they arrive and calls
:meth:`~async_chat.found_terminator` at each boundary; output is a FIFO of byte strings and
*producers* (objects with ``more()``) sent as the socket takes it.

Memory: the receive buffer holds at most one read (``ac_in_buffer_size`` bytes) plus a partial
terminator, whatever the peer sends; what :meth:`collect_incoming_data` keeps is the
application's business (``smtpd`` caps it). Output is not capped: :meth:`push` queues
everything it is given, as asynchat does.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from portside import asyncore
from portside._asyncore import registration as _registration
from portside._asyncore.shared import handling as _handling
from portside._asyncore.shared import touch

__all__ = ["async_chat", "find_prefix_at_end", "simple_producer"]


_BYTES = (bytes, bytearray, memoryview)  # what push() takes (a tuple: isinstance is fastest)


class _Producer(Protocol):
    def more(self) -> bytes: ...


class async_chat(asyncore.dispatcher):
    """A dispatcher that frames input by terminator and queues output (see the module doc).

    Subclasses implement :meth:`collect_incoming_data` and :meth:`found_terminator`. Order of
    calls for each read: ``collect_incoming_data(piece)``* then ``found_terminator()`` per
    terminator found, with ``set_terminator`` free to change the mode in between.
    """

    ac_in_buffer_size = 65536
    ac_out_buffer_size = 65536
    use_encoding = 0
    encoding = "latin-1"

    def __init__(self, sock: Any = None, map: dict[int, Any] | None = None) -> None:
        self.ac_in_buffer = b""
        self.incoming: list[bytes] = []
        self.producer_fifo: deque[Any] = deque()
        self.terminator: bytes | int | None = None
        super().__init__(sock, map)

    def collect_incoming_data(self, data: bytes) -> None:
        """Received bytes that are not a terminator.

        Abstract, as documented for asynchat: a subclass must implement it.
        """
        raise NotImplementedError("must be implemented in subclass")

    def _collect_incoming_data(self, data: bytes) -> None:
        self.incoming.append(data)

    def _get_data(self) -> bytes:
        data = b"".join(self.incoming)
        del self.incoming[:]
        return data

    def found_terminator(self) -> None:
        """The terminator was reached.

        Abstract, as documented for asynchat: a subclass must implement it.
        """
        raise NotImplementedError("must be implemented in subclass")

    def set_terminator(self, term: bytes | str | int | None) -> None:
        """Cut input at ``term``: a delimiter, a byte count (>= 0), or None (no cutting)."""
        if isinstance(term, str) and self.use_encoding:
            term = bytes(term, self.encoding)
        elif isinstance(term, int) and term < 0:
            raise ValueError("the number of received bytes must be positive")
        self.terminator = term  # type: ignore[assignment]

    def get_terminator(self) -> bytes | int | None:
        """The current terminator (for a count: the bytes still to come)."""
        return self.terminator

    def handle_read(self) -> None:
        """Read once, then cut the buffer at terminators until it is used up."""
        try:
            data: Any = self.recv(self.ac_in_buffer_size)
        except BlockingIOError:
            return
        except OSError:
            self.handle_error()
            return
        if isinstance(data, str) and self.use_encoding:
            data = bytes(data, self.encoding)
        buffer = self.ac_in_buffer = self.ac_in_buffer + data
        # At every callback self.ac_in_buffer is the unprocessed input (as in asynchat); what
        # found_terminator leaves there is what the loop goes on with.
        while buffer:
            terminator = self.get_terminator()
            if not terminator:
                self.collect_incoming_data(buffer)
                buffer = b""
            elif isinstance(terminator, int):
                if len(buffer) < terminator:
                    self.collect_incoming_data(buffer)
                    self.terminator = self.terminator - len(buffer)  # type: ignore[operator]
                    buffer = b""
                else:
                    self.collect_incoming_data(buffer[:terminator])
                    self.ac_in_buffer = buffer[terminator:]
                    self.terminator = 0
                    self.found_terminator()
                    buffer = self.ac_in_buffer
            else:
                index = buffer.find(terminator)
                if index != -1:
                    if index > 0:
                        self.collect_incoming_data(buffer[:index])
                    self.ac_in_buffer = buffer[index + len(terminator) :]
                    self.found_terminator()
                    buffer = self.ac_in_buffer
                    continue
                keep = find_prefix_at_end(buffer, terminator)
                if not keep:
                    self.collect_incoming_data(buffer)
                    buffer = b""
                elif keep != len(buffer):
                    self.collect_incoming_data(buffer[:-keep])
                    buffer = buffer[-keep:]
                    break
                else:
                    break
        self.ac_in_buffer = buffer

    def handle_write(self) -> None:
        self.initiate_send()

    def handle_close(self) -> None:
        self.close()

    def push(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending (split into ``ac_out_buffer_size`` pieces) and send."""
        if not isinstance(data, _BYTES):
            raise TypeError("data argument must be byte-ish (%r)", type(data))
        size = self.ac_out_buffer_size
        if len(data) > size:
            for start in range(0, len(data), size):
                self.producer_fifo.append(data[start : start + size])
        else:
            self.producer_fifo.append(data)
        self.initiate_send()
        if self is not _handling.dispatcher:
            touch(self)

    def push_with_producer(self, producer: _Producer) -> None:
        """Queue a producer: its ``more()`` is called for data until it returns b''."""
        self.producer_fifo.append(producer)
        self.initiate_send()
        touch(self)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        # the map driver evaluates this expression itself (registration.queue_writable)
        return not (self.connected and not self.producer_fifo)

    def close_when_done(self) -> None:
        """Close once everything queued so far has been sent."""
        self.producer_fifo.append(None)
        touch(self)

    def initiate_send(self) -> None:
        """Send from the head of the output FIFO: at most one socket send per call."""
        fifo = self.producer_fifo
        while fifo and self.connected:
            first = fifo[0]
            if not first:
                del fifo[0]
                if first is None:
                    self.handle_close()
                    return
            size = self.ac_out_buffer_size
            try:
                data = first[:size]
            except TypeError:
                data = first.more()
                if data:
                    fifo.appendleft(data)
                else:
                    del fifo[0]
                continue
            if isinstance(data, str) and self.use_encoding:
                data = bytes(data, self.encoding)
            try:
                sent = self.send(data)
            except OSError:
                self.handle_error()
                return
            if sent:
                if sent < len(data) or size < len(first):
                    fifo[0] = first[sent:]
                else:
                    del fifo[0]
            return

    def discard_buffers(self) -> None:
        """Drop buffered input, collected input and queued output."""
        self.ac_in_buffer = b""
        del self.incoming[:]
        self.producer_fifo.clear()
        touch(self)


_registration.always_readable.add(async_chat.readable)
_registration.queue_writable[async_chat.writable] = _registration.PRODUCER_FIFO


class simple_producer:
    """A producer over a bytes object, handing out ``buffer_size`` bytes per ``more()``."""

    def __init__(self, data: bytes, buffer_size: int = 512) -> None:
        self.data = data
        self.buffer_size = buffer_size

    def more(self) -> bytes:
        """The next piece, or b'' when exhausted."""
        if len(self.data) > self.buffer_size:
            result = self.data[: self.buffer_size]
            self.data = self.data[self.buffer_size :]
            return result
        result, self.data = self.data, b""
        return result


def find_prefix_at_end(haystack: bytes, needle: bytes) -> int:
    """The length of the longest proper prefix of ``needle`` that ``haystack`` ends with."""
    size = len(needle) - 1
    while size and not haystack.endswith(needle[:size]):
        size -= 1
    return size
