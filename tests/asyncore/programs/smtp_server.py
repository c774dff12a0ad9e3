# ruff: noqa -- documentation-style code, kept as users wrote it
"""An smtpd.SMTPServer that prints what process_message receives.

Arguments: ``decode`` (decode_data=True), ``utf8`` (enable_SMTPUTF8=True), ``size=N``,
``debugging`` (a DebuggingServer instead).
"""

import smtpd
import asyncore
import sys

args = sys.argv[1:]
options = {"decode_data": "decode" in args, "enable_SMTPUTF8": "utf8" in args}
for arg in args:
    if arg.startswith("size="):
        options["data_size_limit"] = int(arg[5:])


class Printer(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        print("MESSAGE", repr(mailfrom), rcpttos, repr(data), sorted(kwargs.items()), flush=True)
        if b"reject" in (data if isinstance(data, bytes) else data.encode()):
            return "554 rejected by policy"


cls = smtpd.DebuggingServer if "debugging" in args else Printer
server = cls(("127.0.0.1", 0), None, **options)
print("PORT", server.socket.getsockname()[1], flush=True)
asyncore.loop()
