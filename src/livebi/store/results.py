"""Stored results and query shares: what a finished question returned, and who else may read it.

A question's result is stored as it was published (bounded by ``max_result_bytes``, like every
result), so its asker after a reload and the users it was shared with can open it later. Both
tables follow the question's retention: their rows go when the question goes (the history keeps
the last ``queries_per_user`` questions). SQLite does not enforce ``ON DELETE CASCADE`` unless
asked to, so every deletion of questions calls :func:`delete_dependents` first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import queries, query_results, query_shares, users


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def delete_dependents(conn: Any, doomed: Any) -> None:
    """Delete the stored results and shares of the questions ``doomed`` selects (a select of
    query ids), before the questions themselves are deleted in the same transaction."""
    for statement in dependents_deletes(doomed):
        await conn.execute(statement)


def dependents_deletes(doomed: Any) -> list[Any]:
    """The statements of :func:`delete_dependents` (``doomed``: a select or a list of query
    ids), for a synchronous connection."""
    return [
        delete(query_results).where(query_results.c.query_id.in_(doomed)),
        delete(query_shares).where(query_shares.c.query_id.in_(doomed)),
    ]


class QueryResults:
    """Stored results and the shares of questions, over the metadata store's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def result(self, query_id: str) -> dict[str, Any] | None:
        """The stored result data of a question; None when it has none (or is gone)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(query_results.c.result).where(query_results.c.query_id == query_id))).scalar()

    async def question(self, query_id: str) -> dict[str, Any] | None:
        """``{query_id, user_id, question, sql, warehouse, status, has_result}`` of a question."""
        stmt = (
            select(queries.c.query_id, queries.c.user_id, queries.c.question, queries.c.sql, queries.c.warehouse,
                   queries.c.status, query_results.c.query_id.is_not(None).label("has_result"))
            .select_from(queries.outerjoin(query_results, query_results.c.query_id == queries.c.query_id))
            .where(queries.c.query_id == query_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return {**dict(row), "has_result": bool(row["has_result"])} if row else None

    async def users_named(self, usernames: Iterable[str]) -> dict[str, str]:
        """username -> user id for the usernames that exist."""
        names = list(usernames)
        if not names:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(users.c.username, users.c.id).where(users.c.username.in_(names)))
            return {r.username: r.id for r in rows}

    async def share(self, query_id: str, *, shared_by: str, user_ids: Iterable[str]) -> dt.datetime:
        """Record that ``shared_by`` shared a question with ``user_ids`` (sharing again renews
        the row); returns the time recorded. One transaction: all or nothing."""
        ids = sorted(set(user_ids))
        now = _now()
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(query_shares).where(query_shares.c.query_id == query_id, query_shares.c.user_id.in_(ids))
            )
            await conn.execute(
                insert(query_shares),
                [{"query_id": query_id, "user_id": uid, "shared_by": shared_by, "shared_at": now} for uid in ids],
            )
        return now

    async def is_shared_with(self, query_id: str, user_id: str) -> bool:
        stmt = select(query_shares.c.query_id).where(
            and_(query_shares.c.query_id == query_id, query_shares.c.user_id == user_id)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).first() is not None
