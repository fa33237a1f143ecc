"""The SQLite limit: a raw `sqlite3` drain loop, no abstraction.

    python benchmarks/raw_sqlite.py PATH BATCH OWNER

On the agent's own queue file and with the same rules (a lease, an owner,
expired leases reclaimable, the result stored in the same transaction as the
ack, only the owner's in-progress documents acknowledged) and the same
settings (WAL, `synchronous=NORMAL`), one connection in autocommit mode:

- claim: one `UPDATE ... RETURNING` statement (an autocommit write statement
  takes SQLite's write lock before it reads, so two claimers never pick the
  same document);
- ack: one transaction of two statements, the batch's results inserted and
  its documents marked done, each statement taking the whole batch as one
  JSON array (`json_each`), so the statement text is the same whatever the
  batch size.

The no-op "processing" is an empty result per document, as the agent's
`noop` processor gives. Speaks the `drain_worker` protocol.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

from drain_worker import ready_then_wait, report

CLAIM = """
UPDATE documents
SET status = 'in_progress', owner = :owner, lease_expires_at = :expires, updated_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id FROM documents
        WHERE status = 'in_progress' AND lease_expires_at < :now LIMIT :limit)
    UNION ALL
    SELECT id FROM (SELECT id FROM documents WHERE status = 'pending' LIMIT :limit)
    LIMIT :limit)
RETURNING id, payload, attempts
"""

STORE = """
INSERT INTO results (document_id, result, owner, created_at)
SELECT d.id, o.value ->> '$[1]', d.owner, :now
FROM json_each(:outcomes) AS o CROSS JOIN documents AS d ON d.id = o.value ->> '$[0]'
WHERE d.owner = :owner AND d.status = 'in_progress'
"""

DONE = """
UPDATE documents SET status = 'done', lease_expires_at = NULL, updated_at = :now
WHERE id IN (SELECT value ->> '$[0]' FROM json_each(:outcomes))
  AND owner = :owner AND status = 'in_progress'
"""


def main(path: str, batch: int, owner: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    cpu = ready_then_wait()
    done = 0
    while True:
        now = time.time()
        claim = {"owner": owner, "now": now, "expires": now + 300, "limit": batch}
        rows = conn.execute(CLAIM, claim).fetchall()
        if not rows:
            break
        outcomes = json.dumps([[row[0], ""] for row in rows])  # the no-op result
        ack = {"outcomes": outcomes, "owner": owner, "now": time.time()}
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(STORE, ack)
        done += conn.execute(DONE, ack).rowcount
        conn.execute("COMMIT")
    conn.close()
    report(done, cpu)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
