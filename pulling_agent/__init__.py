"""pulling-agent: pull batches of documents from a queue; pause, resume and stop safely.

The public surface, for embedding the agent or writing a plug-in.
"""

from pulling_agent.commands import (
    Action,
    ChannelName,
    Command,
    CommandQueue,
    CommandResult,
    Report,
    ReportKind,
)
from pulling_agent.controller import Controller
from pulling_agent.processors.base import ProcessingError, Processor
from pulling_agent.runtime import AgentConfig, run_agent
from pulling_agent.snapshot import Listener, Snapshot
from pulling_agent.sources.base import Document, DocumentStatus, Outcome, Source, SourceError
from pulling_agent.state import Desired, State

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AgentConfig",
    "ChannelName",
    "Command",
    "CommandQueue",
    "CommandResult",
    "Controller",
    "Desired",
    "Document",
    "DocumentStatus",
    "Listener",
    "Outcome",
    "ProcessingError",
    "Processor",
    "Report",
    "ReportKind",
    "Snapshot",
    "Source",
    "SourceError",
    "State",
    "__version__",
    "run_agent",
]
