"""Dashboards in the metadata store: rows, members, the op log; no rules of who may do what.

The dashboard row holds the whole state as a JSON snapshot plus the columns queries need
(owner, title, public, version). :meth:`DashboardStore.apply_edit` writes an edit's op log rows
and the new snapshot in one transaction, guarded by the version the edit was applied to, so a
concurrent writer (another process) or a deletion in between makes it fail cleanly
(:class:`VersionConflict`) instead of losing an edit. The service serializes edits on one process
and reloads and retries on a conflict. Several nodes on one PostgreSQL store also take the
dashboard's advisory lock for the whole read-apply-write (:meth:`DashboardStore.serialized`):
without it, nodes editing one dashboard at once kept losing the version race to each other
(edits failed after their retries); with it they queue in PostgreSQL's lock order.

SQLite and PostgreSQL both: writes start with the guarded UPDATE (SQLite takes its write lock
right away, so two writers never deadlock upgrading read locks) and SQLite does not enforce
``ON DELETE CASCADE`` by default, so children are deleted explicitly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from typing import Any, AsyncIterator, Iterable, Mapping

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import dashboard_members, dashboard_ops, dashboards, users

#: First key of the two-key advisory locks of dashboards ("lb"), apart from other lock users.
_PG_LOCK_CLASS = 0x6C62

#: Roles stored on member rows (the owner is the dashboard row's owner_id).
MEMBER_ROLES = ("editor", "viewer")


class VersionConflict(Exception):
    """The dashboard changed (or was deleted) since the edit's snapshot was loaded."""


class UnknownUser(Exception):
    """No user has that username."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class DashboardStore:
    """Repository over the dashboard tables of the metadata store (SQLAlchemy Core, async)."""

    def __init__(self, engine: AsyncEngine, *, ops_kept: int = 10_000) -> None:
        """``ops_kept``: op log rows kept per dashboard (the newest); the snapshot holds the
        state, the log is for audit and catching up, so an editor cannot grow it without bound."""
        self.engine = engine
        self.ops_kept = ops_kept

    @contextlib.asynccontextmanager
    async def serialized(self, dashboard_id: str) -> AsyncIterator[None]:
        """Hold ``dashboard_id``'s lock across every process on this store (PostgreSQL: a
        transaction-level advisory lock, released by the transaction's end whatever happens, so
        a cancelled edit cannot leave it held). SQLite: nothing to do (the version guard)."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        digest = hashlib.blake2b(dashboard_id.encode(), digest_size=4).digest()
        key = int.from_bytes(digest, "big", signed=True)
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": _PG_LOCK_CLASS, "k": key})
            yield

    # Dashboards ------------------------------------------------------------------------------

    async def create(self, snapshot: Mapping[str, Any], *, limit_per_owner: int | None = None) -> bool:
        """Insert a new dashboard (version 0); False when its owner already has
        ``limit_per_owner`` dashboards."""
        now = _now()
        async with self.engine.begin() as conn:
            if limit_per_owner is not None:
                owned = (await conn.execute(
                    select(func.count()).select_from(dashboards).where(dashboards.c.owner_id == snapshot["owner"]["id"])
                )).scalar_one()
                if owned >= limit_per_owner:
                    return False
            await conn.execute(insert(dashboards).values(
                id=snapshot["id"], owner_id=snapshot["owner"]["id"], title=snapshot["title"],
                public=bool(snapshot["public"]), version=snapshot["version"], snapshot=dict(snapshot),
                created_at=now, updated_at=now,
            ))
        return True

    async def get(self, dashboard_id: str, *, user_id: str | None = None) -> dict[str, Any] | None:
        """The dashboard's snapshot (``public`` and ``version`` from their columns) and, with
        ``user_id``, ``member_role``: that user's member row role (None if not a member)."""
        cols = [dashboards.c.owner_id, dashboards.c.public, dashboards.c.version, dashboards.c.snapshot]
        stmt = select(*cols).where(dashboards.c.id == dashboard_id)
        if user_id is not None:
            stmt = select(*cols, dashboard_members.c.role).select_from(dashboards.outerjoin(
                dashboard_members,
                and_(dashboard_members.c.dashboard_id == dashboards.c.id, dashboard_members.c.user_id == user_id),
            )).where(dashboards.c.id == dashboard_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        snapshot = {**row["snapshot"], "public": bool(row["public"]), "version": row["version"]}
        return {"owner_id": row["owner_id"], "snapshot": snapshot, "member_role": row.get("role")}

    async def list_for(self, user_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
        """Dashboards ``user_id`` owns, is a member of, or that are public, newest change
        first; each with ``owner_id``, ``member_role`` and ``snapshot``."""
        member = and_(dashboard_members.c.dashboard_id == dashboards.c.id, dashboard_members.c.user_id == user_id)
        stmt = (
            select(dashboards.c.owner_id, dashboards.c.public, dashboards.c.version, dashboards.c.snapshot,
                   dashboard_members.c.role)
            .select_from(dashboards.outerjoin(dashboard_members, member))
            .where(or_(dashboards.c.owner_id == user_id, dashboard_members.c.user_id.is_not(None),
                       dashboards.c.public.is_(True)))
            .order_by(dashboards.c.updated_at.desc(), dashboards.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            {"owner_id": r["owner_id"], "member_role": r["role"],
             "snapshot": {**r["snapshot"], "public": bool(r["public"]), "version": r["version"]}}
            for r in rows
        ]

    async def delete(self, dashboard_id: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(dashboards).where(dashboards.c.id == dashboard_id))
            await conn.execute(delete(dashboard_ops).where(dashboard_ops.c.dashboard_id == dashboard_id))
            await conn.execute(delete(dashboard_members).where(dashboard_members.c.dashboard_id == dashboard_id))
        return res.rowcount > 0

    async def set_public(self, dashboard_id: str, public: bool) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(dashboards).where(dashboards.c.id == dashboard_id).values(public=public, updated_at=_now())
            )
        return res.rowcount > 0

    # Edits -----------------------------------------------------------------------------------

    async def apply_edit(
        self, dashboard_id: str, *, expected_version: int, snapshot: Mapping[str, Any],
        user_id: str, updates: Iterable[Mapping[str, Any]],
    ) -> None:
        """Store an applied edit: the op log rows (one per version) and the new snapshot, in one
        transaction, only if the dashboard is still at ``expected_version``.

        Args:
            updates: the edit's update records (``version``, ``update_type``, ``data``).

        Raises:
            VersionConflict: the dashboard is gone or another writer moved its version on;
                nothing was written.
        """
        now = _now()
        rows = [{"dashboard_id": dashboard_id, "version": u["version"], "user_id": user_id,
                 "op": {"update_type": u["update_type"], "data": u["data"]}, "created_at": now} for u in updates]
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(dashboards)
                .where(dashboards.c.id == dashboard_id, dashboards.c.version == expected_version)
                .values(version=snapshot["version"], title=snapshot["title"], snapshot=dict(snapshot), updated_at=now)
            )
            if res.rowcount != 1:
                raise VersionConflict(dashboard_id)
            if rows:
                await conn.execute(insert(dashboard_ops), rows)
                oldest_kept = snapshot["version"] - self.ops_kept
                if oldest_kept > 0:
                    # trim what this edit pushed out of the window (a primary-key range)
                    await conn.execute(delete(dashboard_ops).where(
                        dashboard_ops.c.dashboard_id == dashboard_id, dashboard_ops.c.version <= oldest_kept))

    async def ops(self, dashboard_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """The op log after version ``after``, in version order."""
        stmt = (select(dashboard_ops.c.version, dashboard_ops.c.user_id, dashboard_ops.c.op)
                .where(dashboard_ops.c.dashboard_id == dashboard_id, dashboard_ops.c.version > after)
                .order_by(dashboard_ops.c.version))
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(stmt)).mappings()]

    # Members ---------------------------------------------------------------------------------

    async def members(self, dashboard_id: str) -> list[dict[str, Any]]:
        """Member rows with usernames (editors first, then viewers; by name)."""
        stmt = (
            select(users.c.id, users.c.username, dashboard_members.c.role)
            .select_from(dashboard_members.join(users, users.c.id == dashboard_members.c.user_id))
            .where(dashboard_members.c.dashboard_id == dashboard_id)
            .order_by(dashboard_members.c.role, users.c.username)
        )
        async with self.engine.connect() as conn:
            return [{"user": {"id": r["id"], "username": r["username"]}, "role": r["role"]}
                    for r in (await conn.execute(stmt)).mappings()]

    async def user_by_name(self, username: str) -> dict[str, str] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users.c.id, users.c.username).where(users.c.username == username))).first()
        return {"id": row.id, "username": row.username} if row else None

    async def set_member(self, dashboard_id: str, user_id: str, role: str) -> None:
        """Add ``user_id`` with ``role`` or change their role."""
        if role not in MEMBER_ROLES:
            raise ValueError(f"unknown member role {role!r}")
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(dashboard_members)
                .where(dashboard_members.c.dashboard_id == dashboard_id, dashboard_members.c.user_id == user_id)
                .values(role=role)
            )
            if res.rowcount == 0:
                await conn.execute(insert(dashboard_members).values(
                    dashboard_id=dashboard_id, user_id=user_id, role=role, added_at=_now()))

    async def remove_member(self, dashboard_id: str, user_id: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(dashboard_members).where(
                dashboard_members.c.dashboard_id == dashboard_id, dashboard_members.c.user_id == user_id))
        return res.rowcount > 0

    async def people(self, dashboard_id: str) -> list[dict[str, str]] | None:
        """The owner and members (``{id, username}``, by username) of a dashboard; None if it
        does not exist."""
        async with self.engine.connect() as conn:
            owner = (await conn.execute(select(dashboards.c.owner_id).where(dashboards.c.id == dashboard_id))).scalar()
            if owner is None:
                return None
            member = select(dashboard_members.c.user_id).where(dashboard_members.c.dashboard_id == dashboard_id)
            rows = await conn.execute(
                select(users.c.id, users.c.username)
                .where(or_(users.c.id.in_(member), users.c.id == owner))
                .order_by(users.c.username)
            )
            return [{"id": r.id, "username": r.username} for r in rows]

    async def member_ids(self, dashboard_id: str) -> list[str]:
        """Every user with a role on the dashboard: owner first, then members by id."""
        async with self.engine.connect() as conn:
            owner = (await conn.execute(select(dashboards.c.owner_id).where(dashboards.c.id == dashboard_id))).scalar()
        people = await self.people(dashboard_id) or []
        return ([owner] if owner else []) + sorted(p["id"] for p in people if p["id"] != owner)
