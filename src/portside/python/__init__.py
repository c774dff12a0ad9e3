"""Twisted's ``twisted.python`` helpers that the protocol door needs (``failure``)."""
