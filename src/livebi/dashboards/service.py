"""The dashboard service: who may do what, one edit at a time, persisted before it is published.

Edits of one dashboard are applied one at a time on this process, in arrival order (a lock per
dashboard): load the latest snapshot, check the caller's role, apply the ops (pure, in
:mod:`.model`), store the op log rows and the new snapshot in one transaction guarded by the
version, then publish one ``dashboard_update`` per applied op on ``dashboard:<id>`` and reply.
Because the lock is held until the publications are out, they leave in version order.

Several processes may edit the same dashboard (PostgreSQL store): they queue on the dashboard's
advisory lock, and the version guard still makes the loser of any race (a node of an older
version, a SQLite file shared by processes) reload and apply its ops again to the new state, so
no edit is lost or applied to a stale snapshot.

Roles are read from the store on every call, so a role change or a removal takes effect at the
next op. Connections that lose their access are also unsubscribed from the channel on this
process (``drop_subscribers``), after the ``members``/``sharing``/``deleted`` update that
explains why has been published to them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import secrets
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

from ..auth import User
from ..permissions import dashboard_role, require_dashboard_role
from ..protocol import ErrorCode, ProtocolError
from ..store.dashboards import DashboardStore, VersionConflict
from .model import apply_edit, new_dashboard

Publish = Callable[..., Awaitable[None]]
#: drop_subscribers(channel, keep): unsubscribe this process's connections on ``channel`` whose
#: user ``keep`` refuses; returns how many.
DropSubscribers = Callable[[str, Callable[[User], bool]], Awaitable[int]]

#: check_widget_query(editor, owner, warehouse): raise ProtocolError(forbidden) when ``editor``
#: may not make a widget of ``owner``'s dashboard query ``warehouse`` (None: the default).
CheckWidgetQuery = Callable[[User, User, "str | None"], None]
#: on_changed(dashboard_id): after an edit or a deletion was stored and published.
OnChanged = Callable[[str], Awaitable[None]]

#: Reloads after losing a version race to another process before giving up.
MAX_EDIT_ATTEMPTS = 5


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def new_dashboard_id() -> str:
    return "d_" + secrets.token_hex(6)


def new_widget_id() -> str:
    return "w_" + secrets.token_hex(4)


def channel_of(dashboard_id: str) -> str:
    return f"dashboard:{dashboard_id}"


class DashboardService:
    """Dashboards for the transports: every method checks the caller's role first.

    Raises ``ProtocolError`` with ``not_found`` (no such dashboard, user or widget),
    ``forbidden`` (the caller's role is too low, or they have none) or ``invalid_op``.

    Args:
        publish: ``publish(channel, type, data)`` of the services.
        drop_subscribers: see :data:`DropSubscribers`.
        max_per_user: dashboards one user may own.
    """

    def __init__(
        self, store: DashboardStore, *, publish: Publish, drop_subscribers: DropSubscribers, max_per_user: int = 200,
        check_widget_query: CheckWidgetQuery | None = None, on_changed: OnChanged | None = None,
    ) -> None:
        self.store = store
        self._publish = publish
        self._drop_subscribers = drop_subscribers
        self.max_per_user = max_per_user
        self._check_widget_query = check_widget_query
        self._on_changed = on_changed
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: collections.Counter[str] = collections.Counter()

    # Access ----------------------------------------------------------------------------------

    async def _load(self, dashboard_id: str, user: User) -> tuple[dict[str, Any], str | None]:
        """The dashboard row and the caller's role (None: a stranger); not_found if none."""
        row = await self.store.get(dashboard_id, user_id=user.id)
        if row is None:
            raise ProtocolError(ErrorCode.not_found, f"no dashboard {dashboard_id!r}")
        role = dashboard_role(user_id=user.id, owner_id=row["owner_id"], member_role=row["member_role"],
                              public=row["snapshot"]["public"])
        return row, role

    async def _require(self, dashboard_id: str, user: User, needed: str, action: str) -> tuple[dict[str, Any], str]:
        row, role = await self._load(dashboard_id, user)
        require_dashboard_role(role, needed, dashboard_id=dashboard_id, action=action)
        return row, role

    async def role_of(self, dashboard_id: str, user: User) -> str | None:
        """The caller's role (None: none); ``not_found`` if the dashboard does not exist."""
        return (await self._load(dashboard_id, user))[1]

    # Reading ---------------------------------------------------------------------------------

    async def list_for(self, user: User) -> list[dict[str, Any]]:
        """Summaries of the dashboards the caller owns, is a member of, or that are public."""
        out = []
        for row in await self.store.list_for(user.id):
            snap = row["snapshot"]
            role = dashboard_role(user_id=user.id, owner_id=row["owner_id"], member_role=row["member_role"],
                                  public=snap["public"])
            out.append({key: snap[key] for key in ("id", "title", "description", "owner", "public", "version", "updated_at")}
                       | {"role": role, "widget_count": len(snap["widgets"])})
        return out

    async def get(self, dashboard_id: str, user: User) -> dict[str, Any]:
        row, role = await self._require(dashboard_id, user, "viewer", "read it")
        return {**row["snapshot"], "role": role}

    async def members(self, dashboard_id: str, user: User) -> dict[str, Any]:
        row, _ = await self._require(dashboard_id, user, "viewer", "see its members")
        return await self._members(row["snapshot"])

    async def _members(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        members = await self.store.members(snapshot["id"])
        return {"members": [{"user": snapshot["owner"], "role": "owner"}, *members], "public": snapshot["public"]}

    # Changes by the owner --------------------------------------------------------------------

    async def create(self, user: User, *, title: str, description: str = "") -> dict[str, Any]:
        snapshot = new_dashboard(dashboard_id=new_dashboard_id(), title=title, description=description,
                                 owner=user.public(), now=_now())
        if not await self.store.create(snapshot, limit_per_owner=self.max_per_user):
            raise ProtocolError(ErrorCode.invalid_op,
                                f"you own {self.max_per_user} dashboards, the most allowed; delete one first")
        return {**snapshot, "role": "owner"}

    async def delete(self, dashboard_id: str, user: User) -> None:
        async with self._locked(dashboard_id):
            row, _ = await self._require(dashboard_id, user, "owner", "delete it")
            await self.store.delete(dashboard_id)
            await self._announce(row["snapshot"], user, "deleted", {})
        await self._drop_subscribers(channel_of(dashboard_id), lambda u: False)
        if self._on_changed is not None:
            await self._on_changed(dashboard_id)

    async def set_member(self, dashboard_id: str, user: User, username: str, role: str) -> dict[str, Any]:
        """Add ``username`` with ``role`` (editor or viewer) or change their role."""
        async with self._locked(dashboard_id):
            row, _ = await self._require(dashboard_id, user, "owner", "change its members")
            target = await self._member_target(row, username)
            await self.store.set_member(dashboard_id, target["id"], role)
            members = await self._members(row["snapshot"])
            await self._announce(row["snapshot"], user, "members", members)
        return members

    async def remove_member(self, dashboard_id: str, user: User, username: str) -> dict[str, Any]:
        async with self._locked(dashboard_id):
            row, _ = await self._require(dashboard_id, user, "owner", "change its members")
            target = await self._member_target(row, username)
            removed = await self.store.remove_member(dashboard_id, target["id"])
            members = await self._members(row["snapshot"])
            if removed:
                await self._announce(row["snapshot"], user, "members", members)
        if removed and not row["snapshot"]["public"]:
            await self._drop_subscribers(channel_of(dashboard_id), lambda u: u.id != target["id"])
        return members

    async def _member_target(self, row: dict[str, Any], username: str) -> dict[str, str]:
        target = await self.store.user_by_name(username)
        if target is None:
            raise ProtocolError(ErrorCode.not_found, f"no user named {username!r}")
        if target["id"] == row["owner_id"]:
            raise ProtocolError(ErrorCode.invalid_op, "the owner's role cannot be changed")
        return target

    async def set_public(self, dashboard_id: str, user: User, public: bool) -> dict[str, Any]:
        async with self._locked(dashboard_id):
            row, _ = await self._require(dashboard_id, user, "owner", "change its sharing")
            await self.store.set_public(dashboard_id, public)
            await self._announce(row["snapshot"], user, "sharing", {"public": public})
        if not public:
            allowed = set(await self.store.member_ids(dashboard_id))
            await self._drop_subscribers(channel_of(dashboard_id), lambda u: u.id in allowed)
        return {"public": public}

    # Edits -----------------------------------------------------------------------------------

    async def edit(self, dashboard_id: str, user: User, ops: Iterable[Any]) -> dict[str, Any]:
        """Apply an edit (atomic), persist it, publish one update per op; the reply data:
        ``{"dashboard_id", "version", "applied": [{"version", "update_type", "data"}]}``."""
        ops = list(ops)
        async with self._locked(dashboard_id):
            for _ in range(MAX_EDIT_ATTEMPTS):
                row, _role = await self._require(dashboard_id, user, "editor", "edit it")
                snapshot = row["snapshot"]
                now = _now()
                result = apply_edit(snapshot, ops, now=now, new_widget_id=new_widget_id)
                self._check_queries(user, result)
                records = [u.record() for u in result.updates]
                try:
                    await self.store.apply_edit(dashboard_id, expected_version=snapshot["version"],
                                                snapshot=result.snapshot, user_id=user.id, updates=records)
                except VersionConflict:
                    continue  # another process wrote first (or deleted it): reload, apply again
                break
            else:
                raise RuntimeError(f"dashboard {dashboard_id}: {MAX_EDIT_ATTEMPTS} version conflicts in a row")
            channel = channel_of(dashboard_id)
            for record in records:
                await self._publish(channel, "dashboard_update", {
                    "dashboard_id": dashboard_id, **record, "user_id": user.id, "timestamp": now})
        if self._on_changed is not None:
            await self._on_changed(dashboard_id)
        return {"dashboard_id": dashboard_id, "version": result.snapshot["version"], "applied": records}

    def _check_queries(self, user: User, result: Any) -> None:
        """Widgets run with their owner's warehouse access: an edit that gives a widget a
        question, SQL or warehouse must name one its author may query too."""
        if self._check_widget_query is None:
            return
        owner = User(id=result.snapshot["owner"]["id"], username=result.snapshot["owner"]["username"])
        widgets = {w["id"]: w for w in result.snapshot["widgets"]}
        for update in result.updates:
            data = update.data
            if update.update_type == "add_widget" or (
                update.update_type == "update_widget" and {"question", "sql", "warehouse"} & set(data)
            ):
                widget = widgets.get(data.get("id") or data.get("widget_id"))
                if widget is not None and (widget.get("question") or widget.get("sql")):
                    self._check_widget_query(user, owner, widget.get("warehouse"))

    # Internals -------------------------------------------------------------------------------

    async def _announce(self, snapshot: dict[str, Any], user: User, update_type: str, data: dict[str, Any]) -> None:
        """Publish a change that is not an edit (no version bump) to the dashboard's viewers."""
        await self._publish(channel_of(snapshot["id"]), "dashboard_update", {
            "dashboard_id": snapshot["id"], "update_type": update_type, "data": data, "user_id": user.id,
            "version": snapshot["version"], "timestamp": _now()})

    @contextlib.asynccontextmanager
    async def _locked(self, dashboard_id: str) -> AsyncIterator[None]:
        """Hold the dashboard's lock; locks of dashboards nobody waits for are forgotten."""
        lock = self._locks.setdefault(dashboard_id, asyncio.Lock())
        self._waiting[dashboard_id] += 1
        try:
            async with lock, self.store.serialized(dashboard_id):  # and across nodes (PostgreSQL)
                yield
        finally:
            self._waiting[dashboard_id] -= 1
            if not self._waiting[dashboard_id]:
                del self._waiting[dashboard_id]
                self._locks.pop(dashboard_id, None)
