"""Errors as JSON: one shape, OpenAI's, on every route.

``{"error": {"message": ..., "type": ..., "param": null, "code": ...}}`` is what the
official ``openai`` client parses into its exceptions, and it carries the type and
message every other client needs, so the glasses routes use it too. No stack trace and
no exception text from a foreign library ever leaves the server: unexpected errors
answer 500 with a fixed message, and the trace goes to the server's log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["ApiError", "error_body"]


class ApiError(Exception):
    """An HTTP error answer: status, OpenAI-style ``type`` and ``code``, a message."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        """The JSON body."""
        return error_body(self.error_type, self.message, code=self.code, param=self.param)


def error_body(
    error_type: str, message: str, *, code: str | None = None, param: str | None = None
) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as UTF-8 JSON."""
    document = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return json.dumps(document).encode("utf-8")
