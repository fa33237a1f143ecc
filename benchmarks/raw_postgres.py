"""The PostgreSQL limit: a raw-SQL drain loop with psycopg 3, no abstraction.

    python benchmarks/raw_postgres.py URL BATCH OWNER

On the agent's own tables (`pulling_agent.documents`, `.results`) and with
the same rules (a lease, an owner, expired leases reclaimable, the result
stored with the ack, only the owner's in-progress documents acknowledged),
one autocommit connection sends two statements a batch and nothing else:

- claim: one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT n) RETURNING`;
- ack: one statement that marks the batch done and stores its results
  (a data-modifying CTE over `unnest` arrays).

The no-op "processing" is an empty result per document, as the agent's
`noop` processor gives. Speaks the `drain_worker` protocol.
"""

from __future__ import annotations

import sys

import psycopg
from drain_worker import ready_then_wait, report

CLAIM = """
UPDATE pulling_agent.documents
SET status = 'in_progress', owner = %(owner)s,
    lease_expires_at = now() + interval '300 seconds', updated_at = now()
WHERE id IN (
    SELECT id FROM pulling_agent.documents
    WHERE status IN ('pending', 'in_progress')  -- the partial index of claimable rows
      AND (status = 'pending' OR lease_expires_at < now())
    ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id, payload, attempts
"""

ACK = """
WITH acked AS (
    UPDATE pulling_agent.documents AS d
    SET status = 'done', lease_expires_at = NULL, updated_at = now()
    FROM unnest(%(ids)s::bigint[], %(results)s::text[]) AS o (id, result)
    WHERE d.id = o.id AND d.owner = %(owner)s AND d.status = 'in_progress'
    RETURNING d.id, o.result)
INSERT INTO pulling_agent.results (document_id, result, owner)
SELECT id, result, %(owner)s FROM acked
"""


def main(url: str, batch: int, owner: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        claim = {"owner": owner, "limit": batch}
        cpu = ready_then_wait()
        done = 0
        while rows := conn.execute(CLAIM, claim).fetchall():
            ids = [row[0] for row in rows]
            results = ["" for _ in rows]  # the no-op processor's result
            ack = conn.execute(ACK, {"ids": ids, "results": results, "owner": owner})
            done += ack.rowcount
        report(done, cpu)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
