"""A complete third-party processor (the README's example)."""

from pulling_agent import Document, Processor


class Upper(Processor):
    interruptible = True  # the agent may pause between two documents

    def __init__(self, suffix: str = "") -> None:  # from --processor-option suffix=...
        self.suffix = suffix

    def process(self, document: Document) -> str:
        return document.payload.upper() + self.suffix  # stored with the ack
