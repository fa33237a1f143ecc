"""What only the PostgreSQL source does, against a real server.

The contract it shares with SQLite is in `test_source_contract.py`; here:
URLs and error messages (never a password), schema creation by several
agents at once, outages (server stopped, then started again: `SourceError`
meanwhile, recovery by itself after), NUL characters, and `seed`/`stats`
through the real CLI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import psycopg
import pytest

from pulling_agent.plugins import load_source
from pulling_agent.sources.base import DocumentStatus, Failure, NextClaim, Outcome, SourceError
from pulling_agent.sources.postgres import ONE_STATEMENT_MAX, PostgresSource
from testkit.agentproc import cli
from testkit.postgres_server import PostgresServer, Template, free_port

pytestmark = [pytest.mark.postgres]

SECRET = "Sw0rdf1sh-n0t-f0r-l0gs"


def test_describe_never_shows_the_password(postgres_database_url: str) -> None:
    url = postgres_database_url.replace("postgres@", f"postgres:{SECRET}@")
    source = PostgresSource(url)
    try:
        described = source.describe()
        assert SECRET not in described
        host_port_db = postgres_database_url.split("@", 1)[1]
        assert described == f"postgresql://postgres@{host_port_db}"
    finally:
        source.close()


def test_unix_socket_url(postgres_server: PostgresServer) -> None:
    url = f"postgresql://postgres@/postgres?host={postgres_server.socket_dir}&port={postgres_server.port}"
    source = PostgresSource(url)
    try:
        assert source.describe() == url
        assert source.backlog() >= 0
    finally:
        source.close()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg"])
def test_other_schemes_reach_the_same_source(postgres_database_url: str, scheme: str) -> None:
    url = postgres_database_url.replace("postgresql://", f"{scheme}://", 1)
    source = load_source(url)
    try:
        assert isinstance(source, PostgresSource)
        assert source.add(["x"]) == 1
    finally:
        source.close()


def test_unreachable_server_names_host_and_port_not_the_password() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SourceError) as caught:
        PostgresSource(f"postgresql://agent:{SECRET}@127.0.0.1:{port}/queue")
    message = str(caught.value)
    assert f"127.0.0.1:{port}/queue" in message
    assert "cannot connect" in message
    assert SECRET not in message


def test_bad_url_is_refused_without_echoing_the_password() -> None:
    with pytest.raises(SourceError, match="invalid PostgreSQL URL") as caught:
        PostgresSource(f"postgresql://agent:{SECRET}%zz@127.0.0.1:5432/queue")
    assert SECRET not in str(caught.value)
    with pytest.raises(SourceError, match="invalid PostgreSQL URL"):
        PostgresSource("postgresql://agent@127.0.0.1:5432/queue?no_such_option=1")
    with pytest.raises(SourceError, match="not a PostgreSQL URL"):
        PostgresSource("mysql://agent@127.0.0.1/queue")


def test_wrong_database_is_a_clear_error(postgres_server: PostgresServer) -> None:
    with pytest.raises(SourceError, match='database "no_such_db" does not exist'):
        PostgresSource(postgres_server.url("no_such_db"))


def test_agents_starting_together_create_the_schema_once(postgres_database_url: str) -> None:
    starters = 6
    barrier = threading.Barrier(starters)
    errors: list[BaseException] = []
    sources: list[PostgresSource] = []

    def start() -> None:
        barrier.wait()
        try:
            sources.append(PostgresSource(postgres_database_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        assert len(sources) == starters
        with psycopg.connect(postgres_database_url) as conn:
            versions = conn.execute("SELECT version FROM pulling_agent.schema_version").fetchall()
        assert versions == [(1,)]
        assert sources[0].add(["a", "b"]) == 2
        assert sources[-1].counts()[DocumentStatus.PENDING] == 2
    finally:
        for source in sources:
            source.close()


def test_newer_schema_is_refused(postgres_database_url: str) -> None:
    PostgresSource(postgres_database_url).close()
    with psycopg.connect(postgres_database_url) as conn:
        conn.execute("UPDATE pulling_agent.schema_version SET version = 99")
    with pytest.raises(SourceError, match="schema version 99 is newer"):
        PostgresSource(postgres_database_url)


def test_nul_characters(postgres_database_url: str) -> None:
    source = PostgresSource(postgres_database_url)
    try:
        with pytest.raises(SourceError, match="NUL"):
            source.add(["fine", "bad\x00payload"])
        assert source.counts()[DocumentStatus.PENDING] == 0, "add is all or nothing"
        source.add(["fine"])
        (doc,) = source.claim("a", 1, 60)
        assert source.ack("a", [Outcome(doc.id, "re\x00sult")]) == 1
        with psycopg.connect(postgres_database_url) as conn:
            row = conn.execute("SELECT result FROM pulling_agent.results").fetchone()
        assert row == ("re\ufffdsult",)
    finally:
        source.close()


def _wait_for_recovery(call: Callable[[], object], limit: float = 60.0) -> list[str]:
    """Retry `call` until it succeeds; return the SourceErrors seen meanwhile."""
    import time

    errors: list[str] = []
    deadline = time.monotonic() + limit
    while True:
        try:
            call()
            return errors
        except SourceError as exc:
            errors.append(str(exc))
            if time.monotonic() > deadline:
                raise AssertionError(f"no recovery after {limit} s: {errors[-3:]}") from exc
            time.sleep(0.1)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_outage_raises_source_error_then_recovers(
    make_postgres_server: Callable[[], PostgresServer], mode: str
) -> None:
    server = make_postgres_server()
    url = server.create_database().replace("postgres@", f"postgres:{SECRET}@")
    source = PostgresSource(url, pool_timeout=2.0)
    try:
        source.add(f"doc-{n}" for n in range(20))
        before = source.claim("a", 5, 300)
        assert source.ack("a", [Outcome(d.id, "ok") for d in before]) == 5

        held = source.claim("a", 5, 300)  # in flight when the server goes away
        server.stop(mode=mode)
        for call in (
            lambda: source.claim("a", 5, 300),
            lambda: source.ack("a", [Outcome(d.id, "ok") for d in held]),
            source.backlog,
            source.counts,
        ):
            with pytest.raises(SourceError) as caught:
                call()
            assert f"{server.host}:{server.port}/" in str(caught.value)
            assert SECRET not in str(caught.value)

        server.start()
        _wait_for_recovery(source.counts)
        # Nothing was lost: the batch in flight is still ours and acks now.
        assert source.ack("a", [Outcome(d.id, "ok") for d in held]) == 5
        while docs := source.claim("a", 5, 300):
            assert source.ack("a", [Outcome(d.id, "ok") for d in docs]) == len(docs)
        assert source.counts() == {
            DocumentStatus.PENDING: 0,
            DocumentStatus.IN_PROGRESS: 0,
            DocumentStatus.DONE: 20,
            DocumentStatus.FAILED: 0,
        }
    finally:
        source.close()
        if not server.running():
            server.start()


def test_recovers_after_an_idle_outage(make_postgres_server: Callable[[], PostgresServer]) -> None:
    """The server restarts while the source is idle: its pooled connections
    are all dead, and the source still comes back by itself."""
    server = make_postgres_server()
    source = PostgresSource(server.create_database())
    try:
        source.add(["a", "b"])
        assert source.backlog() == 2
        server.stop(mode="immediate")
        server.start()
        errors = _wait_for_recovery(lambda: source.claim("x", 10, 60))
        assert len(errors) <= 1, errors
        assert source.counts()[DocumentStatus.IN_PROGRESS] == 2
    finally:
        source.close()


def test_seed_and_stats_through_the_cli(postgres_database_url: str) -> None:
    seeded = cli("seed", "--count", "25", "--source", postgres_database_url)
    assert "25" in seeded.stdout
    stats = cli("stats", "--source", postgres_database_url, "--output", "json")
    assert json.loads(stats.stdout) == {"pending": 25, "in_progress": 0, "done": 0, "failed": 0}


def test_statements_a_batch_takes_whatever_its_size(postgres_template: Template) -> None:
    """Counted by the server's pg_stat_statements, with failures and releases
    at every size: a claim is one autocommit statement (no BEGIN, no COMMIT),
    a settle one more, and a settle that claims the next batch is one
    statement up to ONE_STATEMENT_MAX documents, two (in one pipeline) above."""
    server = postgres_template.server()
    server.start(settings={"shared_preload_libraries": "pg_stat_statements"})
    try:
        url = server.create_database()
        dbname = url.rsplit("/", 1)[1]
        with psycopg.connect(server.url(), autocommit=True) as admin:

            def statements() -> int:
                row = admin.execute(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s"
                    " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                    (dbname,),
                ).fetchone()
                admin.execute(
                    "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database"
                    " WHERE datname = %s",
                    (dbname,),
                )
                return int(row[0]) if row else 0

            admin.execute("CREATE EXTENSION pg_stat_statements")
            source = PostgresSource(url)
            try:
                source.add(f"doc-{n}" for n in range(500))
                for batch, turn in ((10, 1), (ONE_STATEMENT_MAX, 1), (100, 2)):
                    statements()
                    docs = source.claim("a", batch, 60)
                    assert (len(docs), statements()) == (batch, 1)
                    settled = source.settle(
                        "a",
                        [Outcome(d.id, "ok") for d in docs[:-3]],
                        [Failure(docs[-3].id, "boom")],
                        [d.id for d in docs[-2:]],
                        max_attempts=3,
                        then_claim=NextClaim(batch, 60),
                    )
                    assert (settled.acked, settled.retried, settled.released) == (
                        batch - 3,
                        (docs[-3].id,),
                        2,
                    )
                    assert (len(settled.claimed), statements()) == (batch, turn), batch
                    assert source.settle("a", [], [], [d.id for d in settled.claimed], 3)
                    assert statements() == 1
            finally:
                source.close()
    finally:
        server.remove()
