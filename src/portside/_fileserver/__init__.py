"""The insides of :mod:`portside.services.fileserver`, one job per module.

- ``paths``: request-target to file path, and every path-safety rule;
- ``files``: what is known about a file (validators, type, small contents), cached by identity;
- ``conditional``: preconditions (RFC 9110 13) and byte ranges (RFC 9110 14);
- ``dates``: HTTP dates and the access log's date, formatted once per second;
- ``pages``: error pages and the directory listing;
- ``site``: a request in, a :class:`~portside._fileserver.site.Reply` out (no I/O but the
  file system);
- ``sender``: writing a reply's file body (``os.sendfile`` or reads with back-pressure);
- ``connection``: the engine connection that drives the HTTP machine, timeouts and shutdown;
- ``accesslog``: Common Log Format lines.
"""
