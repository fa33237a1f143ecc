"""One exception for everything the Kubernetes API can do wrong, with a message
an operator can act on.

The official client raises `ApiException` (with the API's `Status` body as
JSON), urllib3 errors for the network, and `ConfigException` for a bad
kubeconfig. `translate` turns each into a `KubeError` whose `kind` says what
happened and whose message is one line: the API's own message for a 403
already names the verb and the resource, so it is kept word for word.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pulling_agent.text import one_line

NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
UNAUTHORIZED = "unauthorized"
UNREACHABLE = "unreachable"
GONE = "gone"
CONFIG = "config"
API = "api"

#: Longest detail from a server or a library kept in a one-line message.
DETAIL_CHARS = 200

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
# The websocket client (exec) reports an HTTP refusal of its upgrade as
# ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- {headers} -+-+- {body}").
_HANDSHAKE = re.compile(r"^Handshake status (\d{3})\b")


class KubeError(Exception):
    """A failed Kubernetes API call; `kind` is one of the constants above."""

    def __init__(self, kind: str, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


def _status_message(body: Any) -> str:
    """The `message` of a `Status` body, if the body is one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return one_line(body, DETAIL_CHARS)
    message = data.get("message", "") if isinstance(data, dict) else ""
    return str(message)


def network_reason(exc: BaseException) -> str:
    """A short reason for a network failure: 'Connection refused', 'timed out'."""
    text = str(getattr(exc, "reason", None) or exc)
    match = _ERRNO.search(text)
    if match:
        return match.group(1).strip()
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "certificate" in lowered or "ssl" in lowered:
        return "TLS error: " + one_line(text.split(":")[-1], DETAIL_CHARS)
    # urllib3 messages start with the object's repr; the end is the useful part.
    return one_line(text.split(">: ")[-1], DETAIL_CHARS) or type(exc).__name__


def translate(exc: BaseException, host: str) -> KubeError:
    """The `KubeError` for any exception the client raised while talking to `host`."""
    if isinstance(exc, KubeError):
        return exc
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = _status_message(exc.body) or str(exc.reason or "").strip()
        handshake = _HANDSHAKE.match(str(exc.reason or ""))
        if status == 0 and handshake:
            status = int(handshake.group(1))
            message = _status_message(str(exc.reason).rsplit("-+-+- ", 1)[-1]) or message
        if status == 0:
            return KubeError(
                UNREACHABLE, f"cannot reach the Kubernetes API at {host}: {network_reason(exc)}"
            )
        if status == 404:
            return KubeError(NOT_FOUND, message or "not found", status=status)
        if status == 403:
            return KubeError(FORBIDDEN, message or "forbidden", status=status)
        if status == 401:
            return KubeError(
                UNAUTHORIZED,
                f"the Kubernetes API at {host} rejected the credentials (401 Unauthorized)",
                status=status,
            )
        if status == 410:
            return KubeError(GONE, message or "resource version expired", status=status)
        return KubeError(API, f"Kubernetes API error {status}: {message}", status=status)
    if isinstance(exc, HTTPError | ConnectionError | TimeoutError):
        return KubeError(
            UNREACHABLE, f"cannot reach the Kubernetes API at {host}: {network_reason(exc)}"
        )
    if isinstance(exc, ConfigException):
        return KubeError(CONFIG, f"invalid Kubernetes configuration: {exc}")
    if isinstance(exc, OSError):
        what = exc.filename or "the configuration"
        return KubeError(CONFIG, f"cannot read {what}: {exc.strerror or exc}")
    return KubeError(API, f"{type(exc).__name__}: {exc}")
