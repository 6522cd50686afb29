"""Typed errors of the stepmark client.

Every error the service reports (a ZeroMQ ERROR reply or an HTTP API error body) raises the
subclass of ServiceError named after its code (EINVAL -> InvalidRequest, ...), carrying the
code, the message and whether a retry may help. Failures to reach the service at all raise a
TransportError: Timeout (no reply in time) or Unreachable (connection refused, DNS, TLS).
"""


class StepmarkError(Exception):
    """Base of every error this package raises."""


class TransportError(StepmarkError):
    """The service could not be asked, or did not answer."""


class Timeout(TransportError):
    """No reply within the timeout (after the configured retries).

    Over ZeroMQ this is also what a refused CURVE key looks like: the handshake fails
    silently, so check the keys when every request times out."""


class Unreachable(TransportError):
    """The connection could not be made (refused, unknown host, TLS failure)."""


class ServiceError(StepmarkError):
    """An error reply from the service: `code` (e.g. "EINVAL"), `message`, `retryable`,
    and for the HTTP API the HTTP `status`."""

    code = None

    def __init__(self, code, message, retryable=False, status=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = bool(retryable)
        self.status = status


class ProtocolError(ServiceError):
    code = "EPROTO"


class Unsupported(ServiceError):
    code = "EUNSUPPORTED"


class LimitExceeded(ServiceError):
    code = "ELIMIT"


class InvalidRequest(ServiceError):
    code = "EINVAL"


class BadFormat(ServiceError):
    code = "EFORMAT"


class NotFound(ServiceError):
    code = "ENOTFOUND"


class StateConflict(ServiceError):
    """The request conflicts with the current state: RESULT before any grading, an
    assignment that exists, or (HTTP 409) an Idempotency-Key already used for another
    submission."""

    code = "ESTATE"


class DatabaseUnavailable(ServiceError):
    code = "EDB"


class OutOfMemory(ServiceError):
    code = "ENOMEM"


class InternalError(ServiceError):
    code = "EINTERNAL"


class AuthError(ServiceError):
    """A missing, unknown, revoked or out-of-scope service token (HTTP 401/403)."""

    code = "EAUTH"


_BY_CODE = {c.code: c for c in (ProtocolError, Unsupported, LimitExceeded, InvalidRequest,
                                BadFormat, NotFound, StateConflict, DatabaseUnavailable,
                                OutOfMemory, InternalError, AuthError)}
_BY_STATUS = {400: "EINVAL", 401: "EAUTH", 403: "EAUTH", 404: "ENOTFOUND", 409: "ESTATE",
              413: "ELIMIT", 429: "ELIMIT", 503: "EDB"}


def error_for(code, message, retryable=False, status=None):
    """The ServiceError subclass instance for `code` (a plain ServiceError for codes this
    version does not know; `code` None: guessed from the HTTP status)."""
    if not code and status is not None:
        code = _BY_STATUS.get(status, "EINTERNAL")
    cls = _BY_CODE.get(code, ServiceError)
    return cls(code or "EINTERNAL", message or "(no message)", retryable, status)
