"""Praefect's state in its PostgreSQL database (psycopg2, from Debian's python3-psycopg2).

The tables carry the names and meanings of Praefect's own (Gitaly v16.7.0
internal/praefect/datastore/migrations): ``repositories`` (one row per repository of a
virtual storage, with its ``"primary"`` and ``replica_path``), ``storage_repositories``
(the generation each Gitaly storage holds), ``replication_queue`` (jobs with a state),
``node_status`` (the health checks' last contact per node) and ``schema_migrations``.
Only the columns the sim uses exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg2

from labsim.praefect.pure import replica_path  # noqa: F401  (the store's callers use it)

#: The migrations `praefect sql-migrate` applies, named as Praefect's first ones.
MIGRATIONS: list[tuple[str, str]] = [
    ("20200109161404_hello_world", "CREATE TABLE IF NOT EXISTS hello_world (id INT)"),
    ("20200113151438_1_test_migration", "SELECT 1"),
    ("20200224220728_job_queue", """
        CREATE TABLE IF NOT EXISTS replication_queue (
            id BIGSERIAL PRIMARY KEY, state TEXT NOT NULL DEFAULT 'ready',
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT now(),
            updated_at TIMESTAMP WITHOUT TIME ZONE, attempt INT NOT NULL DEFAULT 3,
            job JSONB)"""),
    ("20200324001604_add_sql_election_tables", """
        CREATE TABLE IF NOT EXISTS node_status (
            praefect_name TEXT NOT NULL, shard_name TEXT NOT NULL, node_name TEXT NOT NULL,
            last_contact_attempt_at TIMESTAMP WITH TIME ZONE,
            last_seen_active_at TIMESTAMP WITH TIME ZONE,
            PRIMARY KEY (praefect_name, shard_name, node_name))"""),
    ("20200512131219_storage_repositories", """
        CREATE TABLE IF NOT EXISTS repositories (
            repository_id BIGSERIAL UNIQUE, virtual_storage TEXT NOT NULL,
            relative_path TEXT NOT NULL, replica_path TEXT NOT NULL, "primary" TEXT,
            PRIMARY KEY (virtual_storage, relative_path));
        CREATE TABLE IF NOT EXISTS storage_repositories (
            virtual_storage TEXT NOT NULL, relative_path TEXT NOT NULL, storage TEXT NOT NULL,
            generation BIGINT NOT NULL,
            PRIMARY KEY (virtual_storage, relative_path, storage))"""),
]
MIGRATION_TABLE = "schema_migrations"


class Store:
    """One connection, opened on demand and dropped when it fails (the database may stop)."""

    def __init__(self, db: dict[str, str], *, timeout: int = 3) -> None:
        self.db = db
        self.timeout = timeout
        self._conn: Any = None

    def dsn(self) -> dict[str, Any]:
        return {"host": self.db.get("host", ""), "port": int(self.db.get("port") or 5432),
                "user": self.db.get("user", ""), "password": self.db.get("password", ""),
                "dbname": self.db.get("dbname", ""),
                "sslmode": self.db.get("sslmode") or "prefer",
                "connect_timeout": self.timeout}

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """A cursor in a transaction; committed at the end, rolled back on an error."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(**self.dsn())
        conn = self._conn
        try:
            with conn, conn.cursor() as cur:  # commit or roll back
                yield cur
        except psycopg2.Error:
            with suppress(psycopg2.Error):
                conn.close()
            self._conn = None
            raise

    # -- migrations ------------------------------------------------------------

    def applied(self) -> set[str]:
        with self.tx() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATION_TABLE} "
                        "(id TEXT PRIMARY KEY, applied_at TIMESTAMP WITH TIME ZONE)")
            cur.execute(f"SELECT id FROM {MIGRATION_TABLE}")
            return {row[0] for row in cur.fetchall()}

    def migrate(self, mid: str, sql: str) -> None:
        with self.tx() as cur:
            cur.execute(sql)
            cur.execute(f"INSERT INTO {MIGRATION_TABLE} (id, applied_at) VALUES (%s, now())",
                        (mid,))

    # -- repositories ----------------------------------------------------------

    def repository(self, vs: str, rel: str) -> tuple[int, str, str | None] | None:
        """(repository_id, replica_path, primary) or None."""
        with self.tx() as cur:
            cur.execute('SELECT repository_id, replica_path, "primary" FROM repositories '
                        "WHERE virtual_storage = %s AND relative_path = %s", (vs, rel))
            row = cur.fetchone()
        return None if row is None else (int(row[0]), str(row[1]), row[2])

    def exists(self, vs: str, rel: str) -> bool:
        return self.repository(vs, rel) is not None

    def reserve_id(self) -> int:
        with self.tx() as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('repositories', "
                        "'repository_id'))")
            return int(cur.fetchone()[0])

    def create(self, vs: str, rel: str, path: str, rid: int, primary: str) -> None:
        with self.tx() as cur:
            cur.execute('INSERT INTO repositories (repository_id, virtual_storage, '
                        'relative_path, replica_path, "primary") VALUES (%s, %s, %s, %s, %s)',
                        (rid, vs, rel, path, primary))
            cur.execute("INSERT INTO storage_repositories VALUES (%s, %s, %s, 0)",
                        (vs, rel, primary))

    def delete(self, vs: str, rel: str) -> None:
        with self.tx() as cur:
            cur.execute("DELETE FROM repositories WHERE virtual_storage = %s AND "
                        "relative_path = %s", (vs, rel))
            cur.execute("DELETE FROM storage_repositories WHERE virtual_storage = %s AND "
                        "relative_path = %s", (vs, rel))

    def generations(self, vs: str, rel: str) -> dict[str, int]:
        with self.tx() as cur:
            cur.execute("SELECT storage, generation FROM storage_repositories WHERE "
                        "virtual_storage = %s AND relative_path = %s", (vs, rel))
            return {str(s): int(g) for s, g in cur.fetchall()}

    def bump(self, vs: str, rel: str, storage: str) -> int:
        """The primary took a write: its generation goes one up (the others fall behind)."""
        with self.tx() as cur:
            cur.execute("SELECT COALESCE(MAX(generation), -1) + 1 FROM storage_repositories "
                        "WHERE virtual_storage = %s AND relative_path = %s", (vs, rel))
            gen = int(cur.fetchone()[0])
            cur.execute("INSERT INTO storage_repositories VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (virtual_storage, relative_path, storage) "
                        "DO UPDATE SET generation = EXCLUDED.generation", (vs, rel, storage, gen))
        return gen

    def set_generation(self, vs: str, rel: str, storage: str, gen: int) -> None:
        with self.tx() as cur:
            cur.execute("INSERT INTO storage_repositories VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (virtual_storage, relative_path, storage) "
                        "DO UPDATE SET generation = GREATEST(storage_repositories.generation,"
                        " EXCLUDED.generation)", (vs, rel, storage, gen))

    def set_primary(self, vs: str, rel: str, primary: str | None) -> None:
        with self.tx() as cur:
            cur.execute('UPDATE repositories SET "primary" = %s WHERE virtual_storage = %s '
                        "AND relative_path = %s", (primary, vs, rel))

    def all_repositories(self) -> list[tuple[str, str, str | None]]:
        with self.tx() as cur:
            cur.execute('SELECT virtual_storage, relative_path, "primary" FROM repositories '
                        "ORDER BY virtual_storage, relative_path")
            return [(str(a), str(b), c) for a, b, c in cur.fetchall()]

    # -- replication queue -----------------------------------------------------

    def enqueue(self, job: dict[str, Any]) -> None:
        with self.tx() as cur:
            cur.execute("INSERT INTO replication_queue (job) VALUES (%s)", (json.dumps(job),))

    def ready_jobs(self) -> list[tuple[int, dict[str, Any]]]:
        """The jobs a replicator may take: new ones and failed ones with attempts left (a
        job out of attempts is dead, and gone)."""
        with self.tx() as cur:
            cur.execute("SELECT id, job FROM replication_queue "
                        "WHERE state IN ('ready', 'failed') ORDER BY id")
            return [(int(i), dict(j)) for i, j in cur.fetchall()]

    def take(self, job_id: int) -> int:
        """Dequeue a job: in progress, one attempt fewer; the attempts it has left."""
        with self.tx() as cur:
            cur.execute("UPDATE replication_queue SET attempt = attempt - 1, "
                        "state = 'in_progress', updated_at = now() WHERE id = %s "
                        "RETURNING attempt", (job_id,))
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def finish(self, job_id: int, state: str) -> None:
        """Acknowledge a job: a completed or dead one is deleted, a failed one kept."""
        with self.tx() as cur:
            if state in ("completed", "dead"):
                cur.execute("DELETE FROM replication_queue WHERE id = %s", (job_id,))
            else:
                cur.execute("UPDATE replication_queue SET state = %s, updated_at = now() "
                            "WHERE id = %s", (state, job_id))

    def ping(self) -> None:
        with self.tx() as cur:
            cur.execute("SELECT 1")

    # -- health ----------------------------------------------------------------

    def record_health(self, praefect: str, checks: Sequence[tuple[str, str, bool]]) -> None:
        """Health checks, (virtual storage, node, answered) each, in one upsert of
        ``node_status``: a round's, as the health manager writes them (from
        PRAEFECT_PER_REPOSITORY), or one node's, as the SQL elector did before."""
        with self.tx() as cur:
            cur.execute(
                "INSERT INTO node_status (praefect_name, shard_name, node_name, "
                "last_contact_attempt_at, last_seen_active_at) "
                "SELECT %s, shard_name, node_name, now(), CASE WHEN is_healthy THEN now() END "
                "FROM (SELECT unnest(%s::text[]) AS shard_name, unnest(%s::text[]) AS node_name,"
                " unnest(%s::boolean[]) AS is_healthy) AS results "
                "ON CONFLICT (praefect_name, shard_name, node_name) DO UPDATE SET "
                "last_contact_attempt_at = now(), last_seen_active_at = "
                "COALESCE(EXCLUDED.last_seen_active_at, node_status.last_seen_active_at)",
                (praefect, [vs for vs, _, _ in checks], [node for _, node, _ in checks],
                 [ok for _, _, ok in checks]))

    def healthy(self, failover_timeout: float) -> dict[str, set[str]]:
        """Per virtual storage, the nodes seen active within the failover timeout."""
        with self.tx() as cur:
            cur.execute("SELECT shard_name, node_name FROM node_status WHERE "
                        "last_seen_active_at > now() - make_interval(secs => %s)",
                        (failover_timeout,))
            out: dict[str, set[str]] = {}
            for vs, node in cur.fetchall():
                out.setdefault(str(vs), set()).add(str(node))
            return out

    def server_version(self) -> int:
        with self.tx() as cur:
            cur.execute("SHOW server_version_num")
            return int(cur.fetchone()[0])
