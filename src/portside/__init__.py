"""portside: every classic Python server model on one fast asyncio/uvloop engine."""

__version__ = "0.1.0"
