"""Retrying API calls from a background thread that can be stopped.

The ConfigMap watch and the status reporter both keep talking to the API
through outages: tenacity's exponential back-off with jitter on `KubeError`,
a callback before each wait (to warn once per kind of failure), and waits
that end at once when the thread is told to stop (`Stopped` is raised then).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from pulling_agent.kube.errors import KubeError


class Stopped(Exception):
    """The thread was stopped while waiting to retry."""


def api_retrying(
    stop: threading.Event, max_backoff: float, on_failure: Callable[[KubeError], None]
) -> Retrying:
    """A `Retrying` for API calls: back off on `KubeError` up to `max_backoff`
    seconds, call `on_failure` before each wait, raise `Stopped` when `stop`
    is set during a wait; any other exception goes through."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, KubeError):
            on_failure(exc)

    return Retrying(
        retry=retry_if_exception_type(KubeError),
        wait=wait_exponential_jitter(multiplier=0.5, max=max_backoff, jitter=0.5),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
