"""Sans-I/O protocol machines: bytes in, events out; events in, bytes out.

Nothing in this package imports ``asyncio``, ``socket``, ``ssl`` or ``portside.core``: a test
enforces it, so every machine can be driven by any front door and tested without a network.
"""
