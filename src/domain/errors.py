"""Errors the domain understands. Adapters translate their own failures into these.

Every message is meant for the person running the client: it says what is wrong
and, where possible, how to fix it. None of them ever carries a token.
"""

from __future__ import annotations


class FedClientError(Exception):
    """Base of every error the client reports to its user."""


class FatalError(FedClientError):
    """Retrying cannot help (wrong token, bad configuration): the client stops."""


class AuthError(FatalError):
    """The server refused our credentials.

    ``refreshable`` says whether a fresh token could help (401 / UNAUTHENTICATED: the
    token may have expired); a refusal of a valid token (403 / PERMISSION_DENIED) is not.
    """

    def __init__(self, message: str, refreshable: bool = True) -> None:
        super().__init__(message)
        self.refreshable = refreshable


class ConfigError(FatalError):
    """The server or the user's settings do not match what the client needs."""


class PermanentError(ConfigError):
    """The answer will not change on retry (wrong server, wrong port, a bad request)."""


class PackageError(FatalError):
    """The compute package is missing, corrupt, unsafe or malformed."""


class TransientError(FedClientError):
    """The other side is unreachable or busy right now; trying again later may work.

    ``retry_after`` is the server's own wish (HTTP Retry-After), in seconds, when it gave one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamEnded(TransientError):
    """The combiner closed the task stream."""


class TaskFailed(FedClientError):
    """One task could not be completed. The client reports it and serves the next one."""


class ModelNotFound(TaskFailed):
    """The combiner does not have (or could not stream) the model we were asked to use."""
