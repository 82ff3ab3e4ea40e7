"""Query sharing: an asker sends a finished question's result to other users.

The ``share`` op names recipients by username or by dashboard (its owner and members, the
sharer excepted). The service checks, in this order, that the question exists (``not_found``),
that the caller asked it (``forbidden``), that it finished with a stored result (``invalid_op``
"wait for the result"), that every recipient exists (``not_found`` naming the unknown ones) and
may query the question's warehouse (``forbidden`` naming them: the result is that warehouse's
data, and ``warehouse_access`` keeps them off it). Any refusal shares nothing. Then the shares
are stored and each recipient gets ``shared_query_result`` on ``user:<id>``.

Who may read a question (its ``query:<id>`` channel, ``GET /api/queries/{id}/result``): its
asker, and the users it was shared with as long as they may still query its warehouse.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from .auth import User
from .permissions import WarehouseAccess
from .protocol import ErrorCode, ProtocolError
from .store.dashboards import DashboardStore
from .store.results import QueryResults

log = logging.getLogger(__name__)

#: publish(channel, type, data)
PublishFn = Callable[..., Awaitable[Any]]


class SharingService:
    """Shares questions' results and answers who may read them.

    Args:
        results: the store's stored results and shares.
        publish: publishes on a channel (the services' publish).
        warehouse_access: the per-warehouse access rules recipients must satisfy.
    """

    def __init__(
        self, *, results: QueryResults, dashboards: DashboardStore, publish: PublishFn, warehouse_access: WarehouseAccess
    ) -> None:
        self._results = results
        self._dashboards = dashboards
        self._publish = publish
        self._access = warehouse_access

    async def share(
        self, user: User, query_id: str, *, usernames: list[str] | None = None, dashboard_id: str | None = None
    ) -> dict[str, Any]:
        """Share ``query_id`` of ``user`` with ``usernames`` or a dashboard's people.

        Returns:
            The reply data: ``{query_id, recipients: [{id, username}], shared_at}``.

        Raises:
            ProtocolError: ``invalid_op``, ``not_found`` or ``forbidden`` as the module says;
                nothing was shared.
        """
        if (usernames is None) == (dashboard_id is None):
            raise ProtocolError(ErrorCode.invalid_op, "share needs exactly one of usernames or dashboard_id")
        question = await self._results.question(query_id)
        if question is None:
            raise ProtocolError(ErrorCode.not_found, f"no query {query_id!r}")
        if question["user_id"] != user.id:
            raise ProtocolError(ErrorCode.forbidden, f"only the asker may share query {query_id!r}")
        if question["status"] == "running":
            raise ProtocolError(ErrorCode.invalid_op, "the question is still running: wait for the result, then share it")
        if question["status"] != "done":
            raise ProtocolError(ErrorCode.invalid_op, f"the question ended without a result ({question['status']}): nothing to share")
        result = await self._results.result(query_id)
        if result is None:
            raise ProtocolError(ErrorCode.not_found, f"the result of query {query_id!r} is no longer stored: ask again, then share")

        recipients = await self._recipients(user, usernames, dashboard_id)
        refused = sorted(r["username"] for r in recipients
                         if not self._access.allows(User(r["id"], r["username"]), question["warehouse"]))
        if refused:
            raise ProtocolError(
                ErrorCode.forbidden,
                f"{', '.join(refused)} may not query warehouse {question['warehouse']!r}, so the result "
                "cannot be shared with them; nothing was shared",
                details={"usernames": refused},
            )
        if not recipients:
            raise ProtocolError(ErrorCode.invalid_op, "nobody to share with (you cannot share with yourself)")

        shared_at = (await self._results.share(query_id, shared_by=user.id, user_ids=[r["id"] for r in recipients])).isoformat()
        data = {
            "query_id": query_id,
            "shared_by": user.public(),
            "question": question["question"],
            "warehouse": question["warehouse"],
            "result": result,
            "shared_at": shared_at,
        }
        for recipient in recipients:
            await self._publish(f"user:{recipient['id']}", "shared_query_result", data)
        return {"query_id": query_id, "recipients": recipients, "shared_at": shared_at}

    async def _recipients(self, user: User, usernames: list[str] | None, dashboard_id: str | None) -> list[dict[str, str]]:
        """The recipients (``{id, username}``, sorted, without the sharer) the op names."""
        if dashboard_id is not None:
            people = await self._dashboards.people(dashboard_id)
            if people is None:
                raise ProtocolError(ErrorCode.not_found, f"no dashboard {dashboard_id!r}")
            if not any(p["id"] == user.id for p in people):
                raise ProtocolError(ErrorCode.forbidden, f"you are not a member of dashboard {dashboard_id!r}")
            return [p for p in people if p["id"] != user.id]
        wanted = sorted(set(usernames or ()))
        found = await self._results.users_named(wanted)
        unknown = [name for name in wanted if name not in found]
        if unknown:
            raise ProtocolError(
                ErrorCode.not_found, f"no user named {', '.join(map(repr, unknown))}; nothing was shared",
                details={"usernames": unknown},
            )
        return [{"id": found[name], "username": name} for name in wanted if found[name] != user.id]

    # Reading ------------------------------------------------------------------------------------

    async def is_recipient(self, user: User, query_id: str) -> bool:
        """Whether ``query_id`` was shared with ``user`` and they may still query its warehouse."""
        if not await self._results.is_shared_with(query_id, user.id):
            return False
        question = await self._results.question(query_id)
        return question is not None and self._access.allows(user, question["warehouse"])

    async def readable_result(self, user: User, query_id: str) -> dict[str, Any] | None:
        """The stored result of ``query_id`` if ``user`` asked it or is a recipient; None when
        there is none or the user may not read it (callers do not tell the two apart, so a
        stranger learns nothing about which questions exist)."""
        question = await self._results.question(query_id)
        if question is None or not question["has_result"]:
            return None
        if question["user_id"] != user.id and not await self.is_recipient(user, query_id):
            return None
        return await self._results.result(query_id)
