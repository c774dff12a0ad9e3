"""Insides of :mod:`portside.asyncore`: the engine driver that runs a dispatcher map."""
