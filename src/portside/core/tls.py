"""TLS contexts for listeners and outgoing connections, built from the stdlib ``ssl`` module.

Both sides refuse anything older than TLS 1.2. A file that cannot be loaded becomes an
:class:`~portside.errors.EndpointError` naming the endpoint and the file.
"""

from __future__ import annotations

import os
import ssl

from portside.core.endpoints import TCPClientEndpoint, TLSFiles
from portside.errors import EndpointError

__all__ = ["client_context", "server_context"]


def server_context(description: str, files: TLSFiles) -> ssl.SSLContext:
    """A server context presenting ``files``' certificate chain and key."""
    # ssl's FileNotFoundError does not say which file is missing: look first.
    for name, path in (("certKey", files.cert), ("privateKey", files.key)):
        if not os.path.isfile(path):
            raise EndpointError(description, name, f"no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise EndpointError(description, "certKey", f"cannot load certificate/key: {exc}") from None
    return context


def client_context(endpoint: TCPClientEndpoint) -> ssl.SSLContext:
    """A client context that verifies the server against ``trustRoots`` (or the system CAs)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    roots = endpoint.trust_roots
    try:
        if roots is not None:
            if os.path.isdir(roots):
                context.load_verify_locations(capath=roots)
            else:
                context.load_verify_locations(cafile=roots)
        if endpoint.certificate is not None:
            context.load_cert_chain(endpoint.certificate, endpoint.private_key)
    except (OSError, ssl.SSLError) as exc:
        raise EndpointError(endpoint.description, "trustRoots", str(exc)) from None
    return context
