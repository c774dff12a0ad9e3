# ruff: noqa -- documentation-style code, kept as users wrote it
"""The echo server example of the asyncore documentation, unchanged but for the port."""

import asyncore
import sys


class EchoHandler(asyncore.dispatcher_with_send):
    def handle_read(self):
        data = self.recv(8192)
        if data:
            self.send(data)


class EchoServer(asyncore.dispatcher):
    def __init__(self, host, port):
        asyncore.dispatcher.__init__(self)
        self.create_socket()
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(5)

    def handle_accepted(self, sock, addr):
        print("Incoming connection from %s" % repr(addr))
        handler = EchoHandler(sock)


server = EchoServer("localhost", 0)
print("PORT", server.socket.getsockname()[1], flush=True)
asyncore.loop(use_poll="--poll" in sys.argv)
