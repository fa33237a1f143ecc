"""Exit status of `pulling-agent pause|resume`, `pulling-agent ctl pause|resume|status` and
`control/control-agent.sh` (one table, the README's; the script spells the same numbers and
tests/unit/test_vocabulary.py checks that it agrees):

    0  done: the state is written and, unless --no-wait, every running agent reports it
    1  failure: the cluster (or the control directory) could not be reached, read or written,
       and nothing was changed, or the ConfigMap was missing and could not be created
    2  usage error
    3  not verified: the state is written, but an agent did not report it within --timeout
       (each one is named on stderr with what it reports instead), or there is no report
       to verify it with
"""

from __future__ import annotations

OK = 0
FAILURE = 1
USAGE = 2
UNVERIFIED = 3
