"""The metadata store: users and question history (dashboards come later).

SQLAlchemy's asyncio engine over ``sqlite+aiosqlite`` (default) or ``postgresql+asyncpg``, so no
call blocks the event loop. The URL picks the backend:

- ``sqlite:///path/livebi.db`` - one process; SQLite serializes writers.
- ``postgresql://user@host/db`` - several processes or nodes share users and history.

:meth:`MetadataStore.open` brings the schema up to date with the Alembic migrations of
``store/migrations`` (a store of the release before Alembic is recognised and upgraded in place).
A SQLite store file is kept private: created (or tightened) to mode 0600, its directory 0700
when livebi creates it; SQLite gives journal files the database file's mode.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .group_commit import GroupCommit, Write
from .migrate import upgrade
from .results import QueryResults, delete_dependents, dependents_deletes
from .schema import queries, query_results, query_shares, token_versions, users

# The writes every question makes, built once: a statement built per call with ``.values(...)``
# carries its values as bind parameters of its own, and SQLAlchemy generated its cache key
# (walking every value) on each execution: ~70 % of the store writer thread's CPU, the limit on
# how many answers per second the store could record (issue 11, benchmarks/askers.py).
_INSERT_QUERY = insert(queries)
_FINISH_QUERY = update(queries).where(queries.c.query_id == bindparam("b_query_id"))
_INSERT_RESULT = insert(query_results)
_USERS_QUERIES_NEWEST_FIRST = (
    select(queries.c.query_id)
    .where(queries.c.user_id == bindparam("b_user_id"))
    .order_by(queries.c.created_at.desc(), queries.c.query_id.desc())
)

class UserExists(Exception):
    pass


def async_url(url: str) -> str:
    """Map a plain backend URL onto the asyncio driver SQLAlchemy needs."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ValueError(f"unsupported metadata store URL {url!r}: use sqlite:///path or postgresql://...")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL (None for other backends and in-memory databases)."""
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            return Path(path) if path and path != ":memory:" else None
    return None


def make_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 (its directory 0700 if created), or tighten it to 0600.

    Created before SQLite opens it, so the password hashes are never world-readable, not even
    for a moment; SQLite creates its -journal/-wal files with the same mode.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


#: How long a write waits for another connection's write to finish before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """Per connection: foreign keys on; write-ahead logging, so readers (the live service, the
    alerts, every REST read) never block a writer's commit nor wait for it; and a writer waits
    for another writer instead of failing at once. (SQLite creates the -wal and -shm files with
    the database file's permissions: private too.)"""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


class MetadataStore:
    """Users and question history.

    Retention: each user keeps the last ``queries_per_user`` questions (older ones are deleted
    as new ones are recorded), and stored SQL and error texts are cut at ``max_sql_chars`` and
    ``max_error_chars``, so one account's stream of failing questions cannot grow the store
    without bound.
    """

    def __init__(
        self, engine: AsyncEngine, *, queries_per_user: int = 1000, max_sql_chars: int = 20_000, max_error_chars: int = 2_000,
        group_commit: GroupCommit | None = None,
    ) -> None:
        self.engine = engine
        self.queries_per_user = queries_per_user
        self._beyond_retention = _USERS_QUERIES_NEWEST_FIRST.offset(queries_per_user)  # built once
        self.max_sql_chars = max_sql_chars
        self.max_error_chars = max_error_chars
        self.results = QueryResults(engine)  # stored results and shares (store/results.py)
        # SQLite has one writer at a time: the question-history writes of concurrent askers
        # are committed together (store/group_commit.py). PostgreSQL runs them side by side.
        self._group = group_commit

    @classmethod
    async def open(cls, url: str, **retention: int) -> "MetadataStore":
        """Open (and create the tables of) the store at ``url``; ``retention`` takes the
        keyword options of the constructor."""
        path = sqlite_path(url)
        if path is not None:
            make_private_file(path)
        engine = create_async_engine(async_url(url), pool_pre_ping=url.startswith("postgres"))
        if engine.dialect.name == "sqlite":
            # SQLite ignores foreign keys unless asked, per connection: without this, removing a
            # user or a question would leave its dashboards, shares and results behind.
            event.listen(engine.sync_engine, "connect", _sqlite_foreign_keys)
        try:
            await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        group = None
        if path is not None:  # a SQLite file (an in-memory database lives in one connection)
            writer = create_engine(f"sqlite:///{path}")
            event.listen(writer, "connect", _sqlite_foreign_keys)
            group = GroupCommit(writer)
            await group.start()
        return cls(engine, group_commit=group, **retention)

    async def close(self) -> None:
        if self._group is not None:
            await self._group.close()
        await self.engine.dispose()

    async def _write(self, write: Write) -> Any:
        """Run ``write(connection)`` (synchronous) in a transaction, grouped with concurrent
        ones on SQLite."""
        if self._group is not None:
            return await self._group.run(write)
        async with self.engine.begin() as conn:
            return await conn.run_sync(write)

    # Users ----------------------------------------------------------------------------------

    async def add_user(self, username: str, password_hash: str) -> dict[str, Any]:
        row = {"id": secrets.token_hex(8), "username": username, "password_hash": password_hash, "created_at": _now()}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(users).values(**row))
        except IntegrityError:
            raise UserExists(username) from None
        return row

    async def set_password(self, username: str, password_hash: str) -> bool:
        """Change a password and revoke the user's tokens (bumps the token version)."""
        async with self.engine.begin() as conn:
            user_id = (await conn.execute(select(users.c.id).where(users.c.username == username))).scalar()
            if user_id is None:
                return False
            await conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
            await self._bump(conn, user_id)
        return True

    async def token_version(self, user_id: str) -> int | None:
        """The user's current token version (0 when never bumped); None if there is no such user."""
        stmt = (
            select(users.c.id, token_versions.c.version)
            .select_from(users.outerjoin(token_versions, token_versions.c.user_id == users.c.id))
            .where(users.c.id == user_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else int(row.version or 0)

    async def bump_token_version(self, user_id: str) -> int:
        """Revoke every token of a user issued so far; returns the new version."""
        async with self.engine.begin() as conn:
            return await self._bump(conn, user_id)

    @staticmethod
    async def _bump(conn: Any, user_id: str) -> int:
        # Update first, insert when there was no row; two racing first bumps make one fail on
        # the primary key, which is a real error the caller sees (rare: a user's first revocation).
        res = await conn.execute(
            update(token_versions).where(token_versions.c.user_id == user_id)
            .values(version=token_versions.c.version + 1, updated_at=_now())
        )
        if res.rowcount == 0:
            await conn.execute(insert(token_versions).values(user_id=user_id, version=1, updated_at=_now()))
        return (await conn.execute(select(token_versions.c.version).where(token_versions.c.user_id == user_id))).scalar_one()

    async def get_user(self, *, username: str | None = None, user_id: str | None = None) -> dict[str, Any] | None:
        cond = users.c.username == username if username is not None else users.c.id == user_id
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(cond))).mappings().first()
        return dict(row) if row else None

    async def list_users(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users.c.id, users.c.username, users.c.created_at).order_by(users.c.username))).mappings()
            return [dict(r) for r in rows]

    async def remove_user(self, username: str) -> bool:
        async with self.engine.begin() as conn:
            user_id = select(users.c.id).where(users.c.username == username).scalar_subquery()
            # SQLite does not enforce ON DELETE CASCADE unless asked to: delete explicitly.
            await conn.execute(delete(token_versions).where(token_versions.c.user_id == user_id))
            await conn.execute(delete(query_shares).where(query_shares.c.user_id == user_id))
            own = select(queries.c.query_id).where(queries.c.user_id == user_id)
            await delete_dependents(conn, own)
            await conn.execute(delete(queries).where(queries.c.user_id == user_id))
            res = await conn.execute(delete(users).where(users.c.username == username))
        return res.rowcount > 0

    # Question history -----------------------------------------------------------------------

    async def record_query(self, *, query_id: str, user_id: str, question: str | None, sql: str | None, warehouse: str) -> None:
        """Record a new question and drop the user's questions beyond ``queries_per_user``."""
        row = dict(
            query_id=query_id,
            user_id=user_id,
            question=_cut(question, self.max_sql_chars),
            sql=_cut(sql, self.max_sql_chars),
            warehouse=warehouse,
            status="running",
            created_at=_now(),
        )

        beyond = self._beyond_retention

        def write(conn: Any) -> None:
            conn.execute(_INSERT_QUERY, row)
            # One read finds the questions past the limit (usually none): the deletes, which
            # must also reach their results and shares, run only when there are some.
            doomed = list(conn.execute(beyond, {"b_user_id": user_id}).scalars())
            if doomed:
                for statement in dependents_deletes(doomed):  # their stored results and shares
                    conn.execute(statement)
                conn.execute(delete(queries).where(queries.c.query_id.in_(doomed)))

        await self._write(write)

    async def finish_query(self, query_id: str, *, status: str, result: dict[str, Any] | None = None, **values: Any) -> None:
        """Record a question's outcome; ``result`` (the published result data, JSON-ready) is
        stored in the same transaction, so a finished question is never seen without it."""
        allowed = {"sql", "engine", "row_count", "error", "elapsed_ms"}
        values = {k: v for k, v in values.items() if k in allowed}
        if "sql" in values:
            values["sql"] = _cut(values["sql"], self.max_sql_chars)
        if isinstance(values.get("error"), dict):
            values["error"] = {
                k: _cut(v, self.max_error_chars) if isinstance(v, str) else v for k, v in values["error"].items()
            }
        finished_at = _now()

        params = {"b_query_id": query_id, "status": status, "finished_at": finished_at, **values}

        def write(conn: Any) -> None:
            conn.execute(_FINISH_QUERY, params)
            if result is not None:
                conn.execute(_INSERT_RESULT, {"query_id": query_id, "result": result, "stored_at": finished_at})

        await self._write(write)

    async def query_owner(self, query_id: str) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(queries.c.user_id).where(queries.c.query_id == query_id))).scalar()

    async def history(self, user_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The user's latest questions, newest first; ``has_result`` says whether
        ``GET /api/queries/{query_id}/result`` has the stored result."""
        cols = [queries.c[name] for name in ("query_id", "question", "sql", "warehouse", "status", "engine", "row_count", "error", "elapsed_ms", "created_at")]
        stored = query_results.c.query_id.is_not(None).label("has_result")
        stmt = (
            select(*cols, stored)
            .select_from(queries.outerjoin(query_results, query_results.c.query_id == queries.c.query_id))
            .where(queries.c.user_id == user_id).order_by(queries.c.created_at.desc()).limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings()
            return [{**dict(r), "has_result": bool(r["has_result"]), "created_at": r["created_at"].isoformat()} for r in rows]
