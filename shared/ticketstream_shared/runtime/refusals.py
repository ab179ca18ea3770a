"""What a service's use cases raise when they refuse a request, and the one table of the HTTP status of each: the use
cases know nothing of HTTP, and `install_refusals` answers them on an app (a 422 names the field)."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Conflict(Exception):
    pass


class Unavailable(Exception):
    """Not now (a log still being read, keys not yet read); `retry_after_s`: when asking again is worth it."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidField(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


STATUS_OF: dict[type[Exception], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Forbidden: status.HTTP_403_FORBIDDEN,
    Conflict: status.HTTP_409_CONFLICT,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def _refused(_: Request, error: Exception) -> JSONResponse:
    if isinstance(error, InvalidField):
        errors = [{"field": error.field, "message": error.message}]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)
    retry_after = error.retry_after_s if isinstance(error, Unavailable) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": str(error)}, status_code=STATUS_OF[type(error)], headers=headers)


def install_refusals(app: FastAPI) -> None:
    for refusal in (*STATUS_OF, InvalidField):
        app.add_exception_handler(refusal, _refused)
