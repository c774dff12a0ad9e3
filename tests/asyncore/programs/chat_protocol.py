# ruff: noqa -- documentation-style code, kept as users wrote it
"""An async_chat protocol using every terminator mode and both kinds of output.

Commands (one per line): ``COUNT n`` (the next n bytes are a body), ``RAW`` (everything until the
connection closes is collected), ``BIG n`` (n bytes pushed at once), ``PRODUCE n`` (n bytes from a
simple_producer), ``QUIT`` (reply, then close when done); anything else is echoed.
"""

import asynchat
import asyncore
import hashlib


class Chat(asynchat.async_chat):
    def __init__(self, sock):
        asynchat.async_chat.__init__(self, sock)
        self.ibuffer = []
        self.mode = "line"
        self.set_terminator(b"\r\n")

    def collect_incoming_data(self, data):
        self.ibuffer.append(data)

    def found_terminator(self):
        data = b"".join(self.ibuffer)
        self.ibuffer = []
        if self.mode == "count":
            self.push(b"BODY %d %s\r\n" % (len(data), hashlib.sha1(data).hexdigest().encode()))
            self.mode = "line"
            self.set_terminator(b"\r\n")
            return
        verb, _, arg = data.partition(b" ")
        if verb == b"COUNT":
            self.mode = "count"
            self.set_terminator(int(arg))
        elif verb == b"RAW":
            self.set_terminator(None)
            self.push(b"RAW ON\r\n")
        elif verb == b"BIG":
            self.push(bytes(range(256)) * (int(arg) // 256) + b"\r\n")
        elif verb == b"PRODUCE":
            self.push_with_producer(asynchat.simple_producer(b"p" * int(arg) + b"\r\n", 1000))
        elif verb == b"QUIT":
            self.push(b"BYE\r\n")
            self.close_when_done()
        else:
            self.push(b"ECHO " + data + b" " + repr(self.get_terminator()).encode() + b"\r\n")

    def handle_close(self):
        if self.get_terminator() is None:
            print("RAW BYTES", len(b"".join(self.ibuffer)), flush=True)
        self.close()


class Server(asyncore.dispatcher):
    def __init__(self):
        asyncore.dispatcher.__init__(self)
        self.create_socket()
        self.set_reuse_addr()
        self.bind(("127.0.0.1", 0))
        self.listen(5)

    def handle_accepted(self, sock, addr):
        Chat(sock)


server = Server()
print("PORT", server.socket.getsockname()[1], flush=True)
asyncore.loop()
