"""`python -m pulling_agent`: the same as the `pulling-agent` command."""

from pulling_agent.cli import main

main(prog_name="pulling-agent")
