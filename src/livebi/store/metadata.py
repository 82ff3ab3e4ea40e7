"""The metadata store: users and question history (dashboards come later).

SQLAlchemy's asyncio engine over ``sqlite+aiosqlite`` (default) or ``postgresql+asyncpg``, so no
call blocks the event loop. The URL picks the backend:

- ``sqlite:///path/livebi.db`` - one process; SQLite serializes writers.
- ``postgresql://user@host/db`` - several processes or nodes share users and history.

Tables are created on :meth:`MetadataStore.open` (``create_all`` is idempotent).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = MetaData()

users = Table(
    "livebi_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

queries = Table(
    "livebi_queries",
    metadata,
    Column("query_id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("question", Text),
    Column("sql", Text),
    Column("warehouse", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # running | done | error | cancelled
    Column("engine", String(16)),
    Column("row_count", Integer),
    Column("error", JSON),
    Column("elapsed_ms", Float),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("finished_at", DateTime(timezone=True)),
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
        self, engine: AsyncEngine, *, queries_per_user: int = 1000, max_sql_chars: int = 20_000, max_error_chars: int = 2_000
    ) -> None:
        self.engine = engine
        self.queries_per_user = queries_per_user
        self.max_sql_chars = max_sql_chars
        self.max_error_chars = max_error_chars

    @classmethod
    async def open(cls, url: str, **retention: int) -> "MetadataStore":
        """Open (and create the tables of) the store at ``url``; ``retention`` takes the
        keyword options of the constructor."""
        engine = create_async_engine(async_url(url), pool_pre_ping=url.startswith("postgres"))
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return cls(engine, **retention)

    async def close(self) -> None:
        await self.engine.dispose()

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
        async with self.engine.begin() as conn:
            res = await conn.execute(update(users).where(users.c.username == username).values(password_hash=password_hash))
        return res.rowcount > 0

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
            res = await conn.execute(delete(users).where(users.c.username == username))
        return res.rowcount > 0

    # Question history -----------------------------------------------------------------------

    async def record_query(self, *, query_id: str, user_id: str, question: str | None, sql: str | None, warehouse: str) -> None:
        """Record a new question and drop the user's questions beyond ``queries_per_user``."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(queries).values(
                    query_id=query_id,
                    user_id=user_id,
                    question=_cut(question, self.max_sql_chars),
                    sql=_cut(sql, self.max_sql_chars),
                    warehouse=warehouse,
                    status="running",
                    created_at=_now(),
                )
            )
            newest = (
                select(queries.c.query_id)
                .where(queries.c.user_id == user_id)
                .order_by(queries.c.created_at.desc(), queries.c.query_id.desc())
                .limit(self.queries_per_user)
            )
            await conn.execute(
                delete(queries).where(queries.c.user_id == user_id, queries.c.query_id.not_in(newest))
            )

    async def finish_query(self, query_id: str, *, status: str, **values: Any) -> None:
        allowed = {"sql", "engine", "row_count", "error", "elapsed_ms"}
        values = {k: v for k, v in values.items() if k in allowed}
        if "sql" in values:
            values["sql"] = _cut(values["sql"], self.max_sql_chars)
        if isinstance(values.get("error"), dict):
            values["error"] = {
                k: _cut(v, self.max_error_chars) if isinstance(v, str) else v for k, v in values["error"].items()
            }
        async with self.engine.begin() as conn:
            await conn.execute(
                update(queries).where(queries.c.query_id == query_id).values(status=status, finished_at=_now(), **values)
            )

    async def query_owner(self, query_id: str) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(queries.c.user_id).where(queries.c.query_id == query_id))).scalar()

    async def history(self, user_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        cols = [queries.c[name] for name in ("query_id", "question", "sql", "warehouse", "status", "engine", "row_count", "error", "elapsed_ms", "created_at")]
        stmt = select(*cols).where(queries.c.user_id == user_id).order_by(queries.c.created_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings()
            return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]
