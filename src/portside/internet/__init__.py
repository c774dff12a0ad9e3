"""The Twisted front door: ``portside.internet.{protocol, reactor, endpoints, address, error}``.

Code written against Twisted's documented API runs after ``twisted.`` becomes ``portside.``
in its imports.
"""
