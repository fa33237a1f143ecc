"""Which PostgreSQL errors will not go away by themselves.

A server that is down, starting, shutting down or out of connections comes
back: the agent retries. Wrong credentials, a database or role that does not
exist, a pg_hba.conf that refuses the host, or no right to create the queue's
schema do not: an agent that meets one at start exits with the server's
message instead of retrying for ever.

libpq gives no SQLSTATE for a refused connection, only the server's message,
so those are recognised by the (English) text of the server's FATAL line; a
server whose messages are translated (`lc_messages`) falls back to retrying,
as before.
"""

from __future__ import annotations

import re

import psycopg

#: SQLSTATE classes of errors no retry cures: 28 invalid authorization,
#: 3D invalid catalog name, 42 syntax error or access rule violation.
PERMANENT_SQLSTATE_CLASSES = ("28", "3D", "42")

_PERMANENT_CONNECT = re.compile(
    r'(database|role) "[^"]*" does not exist'
    r"|authentication failed"
    r"|no pg_hba\.conf entry"
    r"|permission denied for database"
    r"|is not permitted to log in",
    re.IGNORECASE,
)


def refusal_is_permanent(exc: psycopg.Error) -> bool:
    if exc.sqlstate:
        return exc.sqlstate.startswith(PERMANENT_SQLSTATE_CLASSES)
    return _PERMANENT_CONNECT.search(str(exc)) is not None
