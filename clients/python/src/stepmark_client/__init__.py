"""stepmark_client: submit work to a stepmark grading service and read grades back, over
ZeroMQ with CURVE (ZmqClient, Subscriber) or the HTTP API (HttpClient). Both clients have the
same methods: submit, status, result, final, list, iter_pages, iter_submissions, wait."""
from ._base import FINAL_STATES, Page, Submitted, WaitTimeout
from .errors import (AuthError, BadFormat, DatabaseUnavailable, InternalError,
                     InvalidRequest, LimitExceeded, NotFound, OutOfMemory, ProtocolError,
                     ServiceError, StateConflict, StepmarkError, Timeout, TransportError,
                     Unreachable, Unsupported)
from .http_client import HttpClient
from .zmq_client import Event, Subscriber, ZmqClient

__version__ = "0.1.0"
__all__ = ["ZmqClient", "HttpClient", "Subscriber", "Event", "Page", "Submitted",
           "WaitTimeout", "FINAL_STATES", "StepmarkError", "TransportError", "Timeout",
           "Unreachable", "ServiceError", "ProtocolError", "Unsupported", "LimitExceeded",
           "InvalidRequest", "BadFormat", "NotFound", "StateConflict", "DatabaseUnavailable",
           "OutOfMemory", "InternalError", "AuthError"]
