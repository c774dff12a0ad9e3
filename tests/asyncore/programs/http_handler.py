# ruff: noqa -- documentation-style code, kept as users wrote it
"""The http_request_handler example of the asynchat documentation, unchanged, with the
parse_headers/handle_request pieces the documentation leaves to the reader."""

import asynchat
import asyncore


class http_request_handler(asynchat.async_chat):
    def __init__(self, sock, addr, sessions, log):
        asynchat.async_chat.__init__(self, sock=sock)
        self.addr = addr
        self.sessions = sessions
        self.ibuffer = []
        self.obuffer = b""
        self.set_terminator(b"\r\n\r\n")
        self.reading_headers = True
        self.handling = False
        self.cgi_data = None
        self.log = log

    def collect_incoming_data(self, data):
        """Buffer the data"""
        self.ibuffer.append(data)

    def found_terminator(self):
        if self.reading_headers:
            self.reading_headers = False
            self.parse_headers(b"".join(self.ibuffer))
            self.ibuffer = []
            if self.op.upper() == b"POST":
                clen = self.headers.getheader("content-length")
                self.set_terminator(int(clen))
            else:
                self.handling = True
                self.set_terminator(None)
                self.handle_request()
        elif not self.handling:
            self.set_terminator(None)  # browsers sometimes over-send
            self.cgi_data = parse(self.headers, b"".join(self.ibuffer))
            self.handling = True
            self.ibuffer = []
            self.handle_request()


class Headers(dict):
    def getheader(self, name):
        return self.get(name.lower())


def parse(headers, body):
    return body


class Handler(http_request_handler):
    def parse_headers(self, data):
        lines = data.split(b"\r\n")
        self.op, self.path, _ = lines[0].split(b" ")
        self.headers = Headers(
            (k.strip().lower().decode(), v.strip().decode())
            for k, v in (line.split(b":", 1) for line in lines[1:])
        )

    def handle_request(self):
        body = b"%s %s %r" % (self.op, self.path, self.cgi_data)
        self.push(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        self.close_when_done()


class Server(asyncore.dispatcher):
    def __init__(self):
        asyncore.dispatcher.__init__(self)
        self.create_socket()
        self.bind(("127.0.0.1", 0))
        self.listen(5)

    def handle_accepted(self, sock, addr):
        Handler(sock, addr, {}, None)


server = Server()
print("PORT", server.socket.getsockname()[1], flush=True)
asyncore.loop()
