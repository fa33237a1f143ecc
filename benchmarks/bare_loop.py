"""The baseline for throughput: a bare claim/ack loop over a source class.

    python benchmarks/bare_loop.py URL BATCH_SIZE

Opens the source the agent would open for URL (the same class, through the
same plugin loader), then claims BATCH_SIZE documents and acks them all with
an empty result, as the `noop` processor would, until a claim comes back
empty. Prints one JSON object: documents acked and the seconds from the
first claim to the end of the last ack (start-up and the final empty claim
excluded).
"""

from __future__ import annotations

import json
import sys
import time

from pulling_agent.plugins import load_source
from pulling_agent.sources.base import Outcome


def drain(url: str, batch_size: int) -> dict[str, float]:
    source = load_source(url)
    owner = "bare-loop"
    try:
        acked = 0
        cpu_start = time.process_time()
        start = end = time.perf_counter()
        while True:
            docs = source.claim(owner, batch_size, 300.0)
            if not docs:
                break
            acked += source.ack(owner, [Outcome(doc.id, "") for doc in docs])
            end = time.perf_counter()
        cpu = time.process_time() - cpu_start
    finally:
        source.close()
    return {"documents": acked, "seconds": end - start, "cpu_seconds": cpu}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(drain(argv[0], int(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
