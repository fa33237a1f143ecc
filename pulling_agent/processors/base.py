"""The `Processor` contract: what the agent does with one document."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pulling_agent.sources.base import Document


class ProcessingError(Exception):
    """A document could not be processed; the message is kept with it."""


class Processor(ABC):
    """Handles one document at a time and returns the result to store.

    Raise any exception to fail the document: it is retried up to the agent's
    `--max-attempts`, then parked as `failed` with the error text.

    `interruptible = True` declares that the agent may stop between two
    documents of a batch (a pause then takes effect at the next document
    boundary and the untouched rest of the batch is released). Leave it False
    when a batch must be handled as a whole. A class attribute usually; an
    instance may set its own from its options.
    """

    interruptible: bool = False

    @abstractmethod
    def process(self, document: Document) -> str:
        """Return the result for `document` (stored in the ack's transaction)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources at shutdown."""
