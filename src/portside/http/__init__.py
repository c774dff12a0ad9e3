"""HTTP front doors: :mod:`portside.http.server` is the stdlib ``http.server`` on portside.

``HTTPStatus`` and ``HTTPMethod`` are the stdlib's, re-exported so that ``from portside.http
import HTTPStatus`` works as ``from http import HTTPStatus`` does.
"""

from __future__ import annotations

from http import HTTPMethod, HTTPStatus

__all__ = ["HTTPMethod", "HTTPStatus"]
