"""One HTTP(S) POST for the outbound HTTP transports, with errors mapped to TransportError."""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

from edi_gateway.errors import ErrorCode
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.tls import client_tls


def post(
    name: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    ca_file: Path | None = None,
) -> tuple[int, Message, bytes]:
    """POST ``body``; return status, headers and body of a 2xx answer.

    401/403 -> ``AUTH_FAILED``, 413 -> ``TOO_LARGE``, other 4xx -> ``DELIVERY_REFUSED`` (not
    recoverable); 5xx, refused or dropped links -> ``CONNECTION_FAILED`` (recoverable); a
    certificate that is not trusted -> ``TLS_FAILED``.
    """
    context = None
    if url.startswith("https://"):
        context = client_tls(ca_file)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    where = f"connector {name!r}: POST {url}"
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:  # noqa: S310 (the configured URL)
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as exc:
        try:  # the start of the partner's explanation; never unbounded, never a new error
            detail = exc.read(300).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            detail = ""
        finally:
            exc.close()
        raise _http_error(where, exc.code, detail) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            raise TransportError(
                f"{where}: TLS failed ({reason}); check the url and ca_file",
                recoverable=False,
                code=ErrorCode.TLS_FAILED,
            ) from None
        raise _link_error(where, str(reason)) from None
    except (OSError, TimeoutError, http.client.HTTPException) as exc:
        # HTTPException: an answer that is not HTTP, or one cut off (BadStatusLine,
        # IncompleteRead); urllib passes those through unwrapped
        raise _link_error(where, str(exc) or type(exc).__name__) from None


def _http_error(where: str, status: int, detail: str) -> TransportError:
    if status in (401, 403):
        return TransportError(
            f"{where}: refused the credentials (HTTP {status}: {detail}); check the secret",
            recoverable=False,
            code=ErrorCode.AUTH_FAILED,
        )
    if status == 413:
        return TransportError(
            f"{where}: the document is over the partner's size limit (HTTP 413)",
            recoverable=False,
            code=ErrorCode.TOO_LARGE,
        )
    if status < 500:
        return TransportError(
            f"{where}: refused the document (HTTP {status}: {detail}); check with the partner",
            recoverable=False,
            code=ErrorCode.DELIVERY_REFUSED,
        )
    return _link_error(where, f"HTTP {status}: {detail}")


def _link_error(where: str, detail: str) -> TransportError:
    return TransportError(
        f"{where}: {detail}; it is retried, check the url and the partner's server if it lasts",
        recoverable=True,
        code=ErrorCode.CONNECTION_FAILED,
    )
