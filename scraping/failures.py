"""Why a page could not be fetched, as a short reason for pages.parquet (`page_failure`) and the metrics.

What reaches a request's errback is whatever Scrapy, Twisted or a middleware raised, after the retries:
HttpError for a status the spider does not handle, Scrapy's download errors (2.13 and later wrap Twisted's),
Twisted's own errors (older Scrapy, other handlers), IgnoreRequest from robots.txt, the offsite filter or
the redirect limit. The reason is a closed, readable set a user can count and filter on; the full message
goes to the log. The spider names one more itself: `undecodable`, a page it fetched but could not decode.
"""

from __future__ import annotations

from twisted.internet import error as tx
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

#: Every reason failure_reason returns, besides http_<status>; plus the spider's own `undecodable`.
REASONS = (
    "timeout",
    "dns",
    "connection",
    "robots",
    "offsite",
    "redirects",
    "ignored",
    "too_large",
    "cancelled",
    "download_error",
    "undecodable",
)


def _scrapy_errors(*names: str) -> tuple[type[BaseException], ...]:
    """Scrapy's exception classes of these names that this Scrapy has (2.13 added the download errors)."""
    from scrapy import exceptions

    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


def _twisted_web_errors() -> tuple[type[BaseException], ...]:
    """The errors of Twisted's HTTP client: a response lost or never received (a connection closed unanswered)."""
    from twisted.web import _newclient

    names = ("ResponseFailed", "ResponseNeverReceived", "RequestTransmissionFailed", "RequestNotSent")
    return tuple(getattr(_newclient, name) for name in names if hasattr(_newclient, name))


def failure_reason(failure: Failure | BaseException) -> str:
    """The short reason for a failed download: http_<status>, timeout, dns, connection, robots, offsite,
    redirects, ignored, too_large, cancelled, or download_error for anything else."""
    from scrapy.exceptions import IgnoreRequest
    from scrapy.spidermiddlewares.httperror import HttpError

    error = failure.value if isinstance(failure, Failure) else failure
    message = str(error)
    if isinstance(error, HttpError):
        return f"http_{error.response.status}"
    if isinstance(error, IgnoreRequest):
        if "robots.txt" in message:
            return "robots"
        if "offsite" in message:
            return "offsite"
        if "redirect" in message:
            return "redirects"
        return "ignored"
    if isinstance(error, (*_scrapy_errors("DownloadTimeoutError"), tx.TimeoutError, tx.TCPTimedOutError)):
        return "timeout"
    if isinstance(error, (*_scrapy_errors("CannotResolveHostError"), tx.DNSLookupError)):
        return "dns"
    connection = (
        *_scrapy_errors("DownloadConnectionRefusedError", "DownloadFailedError", "ResponseDataLossError"),
        *_twisted_web_errors(),
        tx.ConnectError,  # ConnectionRefusedError, NoRouteError, ... are ConnectErrors
        tx.ConnectionLost,
        tx.ConnectionDone,
        tx.ConnectionAborted,
    )
    if isinstance(error, connection):
        return "connection"
    if isinstance(error, (*_scrapy_errors("DownloadCancelledError"), CancelledError)):
        # Scrapy cancels a download that outgrows DOWNLOAD_MAXSIZE, saying so in the message
        return "too_large" if "max" in message.lower() else "cancelled"
    return "download_error"


__all__ = ["REASONS", "failure_reason"]
