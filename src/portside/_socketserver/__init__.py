"""The insides of :mod:`portside.socketserver`: small collaborators behind the stdlib classes.

- :mod:`.servers`, :mod:`.mixins`, :mod:`.handlers`: the stdlib-shaped classes themselves;
- :mod:`.serving`: the loop a server runs on (accepting, ``shutdown``, ``handle_request``);
- :mod:`.native`: the real sockets of thread, fork and plain servers (counted, drainable);
- :mod:`.channel`, :mod:`.greensock`, :mod:`.fileio`: a socket-like object over an engine
  connection, whose blocking calls suspend a greenlet (or a thread) instead of the loop;
- :mod:`.waiting`: how handler code blocks on loop events (greenlets, bridged threads);
- :mod:`.inflight`: the requests a server is serving: capacity, idle sweep, drain, counts;
- :mod:`.pool`: the bounded thread pool;
- :mod:`.interop`: serving a socketserver server through ``portside.serve``.
"""
