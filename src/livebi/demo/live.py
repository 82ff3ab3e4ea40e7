"""The demo comes alive: a simulator inserting orders, and the "Live sales" dashboard they move.

:class:`OrderSimulator` inserts believable orders into the demo warehouse's ``orders`` table at
``rate`` rows per second, through :meth:`IngestService.insert <livebi.live.ingest.IngestService.insert>`
as the system (the same validation, transaction and change signal as the REST API). Orders are
dated the demo's "today" (the pinned end of its data, ``settings.today``), so today's revenue
grows, and stamped ``created_at`` with the wall-clock time (UTC), so orders per minute can be
counted. Products, prices, quantities, discounts and channels follow the generator's
distributions (:mod:`livebi.demo.generate`). The server starts it when ``demo_live_rate`` > 0
(``livebi demo --live-rate N``) and stops it on shutdown.

:func:`ensure_live_dashboard` creates (or repairs) the public "Live sales" dashboard of the
``demo`` user: today's revenue, orders per minute, revenue by region today and the latest
orders, each widget with SQL (no NLP involved) and ``refresh: {on_data_change, interval_s}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
from typing import Any, Callable

from ..auth import User
from ..dashboards.service import DashboardService
from ..live.ingest import IngestError, IngestService
from ..store.dashboards import DashboardStore
from ..warehouse.base import WarehouseError
from .generate import FIRST_YEAR

log = logging.getLogger(__name__)

#: Shortest pause between two inserts: at higher rates each insert carries several orders.
MIN_TICK_S = 0.1
#: Orders generated on the event loop at most; bigger batches are generated in a worker thread.
INLINE_ROWS = 50
#: Seconds to wait before retrying after the warehouse could not be read.
RETRY_S = 2.0
#: Quantities per category, (power, span): 1 + floor(r^power * span), as the generator draws them.
QUANTITY = {"Office Supplies": (2, 40), "Electronics": (2, 8), "Furniture": (2, 6), "Software": (2, 25)}
SERVICES_QUANTITY = (3, 3)
CHANNELS = (("Online", 0.40), ("Retail", 0.25), ("Partner", 0.17), ("Direct Sales", 0.18))
DISCOUNTS = ((0.0, 0.62), (0.05, 0.18), (0.10, 0.11), (0.15, 0.06), (0.20, 0.03))
STATUSES = (("completed", 0.93), ("returned", 0.035), ("cancelled", 0.035))


@dataclasses.dataclass(frozen=True)
class _Product:
    product_id: int
    category: str
    unit_price: float
    unit_cost: float


def _pick(rng: random.Random, weighted: tuple[tuple[Any, float], ...]) -> Any:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


class OrderSimulator:
    """Inserts demo orders continuously at about ``rate`` per second.

    Args:
        ingest: the server's ingest service (the simulator writes as the system).
        warehouse: the generated demo warehouse's name; ingest_access must list it.
        rate: orders per second (> 0).
        today: the ``order_date`` of every order (None: the real date).
        seed: makes the orders reproducible (tests); None: random.
        on_internal_error: counts unexpected failures (logged with their traceback).

    Raises:
        ValueError: the warehouse cannot take rows.
    """

    def __init__(
        self,
        ingest: IngestService,
        warehouse: str,
        *,
        rate: float,
        today: dt.date | None = None,
        seed: int | None = None,
        on_internal_error: Callable[[], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("the simulator's rate must be positive")
        if not ingest.writable(warehouse):
            raise ValueError(f"the live demo inserts into warehouse {warehouse!r}, which takes no rows: "
                             "list it in ingest_access (livebi demo does)")
        self.ingest = ingest
        self.warehouse = warehouse
        self.rate = rate
        self.today = today
        self._rng = random.Random(seed)
        self._on_internal_error = on_internal_error or (lambda: None)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._products: list[_Product] = []
        self._customers = 0
        self._next_id = 1
        #: orders generated (the schedule), inserted (committed), and inserts that failed
        self.generated = 0
        self.inserted = 0
        self.failures = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="demo-live-orders")

    async def stop(self, *, timeout: float = 5.0) -> None:
        """Stop after the insert under way (so ``inserted`` counts every committed order);
        cancel it if that takes longer than ``timeout`` seconds."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, timeout)
        except (TimeoutError, asyncio.CancelledError):
            pass

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- the loop ----------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; False when stop() was called meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _run(self) -> None:
        while not await self._load():
            if not await self._pause(RETRY_S):
                return
        loop = asyncio.get_running_loop()
        period = max(1.0 / self.rate, MIN_TICK_S)
        most = max(1, round(self.rate * period * 2))  # a stalled loop skips its backlog instead of bursting
        started = loop.time()
        while True:
            elapsed = loop.time() - started
            if not await self._pause(period - elapsed % period):  # ticks on a fixed grid: no drift
                return
            due = int(self.rate * (loop.time() - started)) - self.generated
            if due <= 0:
                continue
            if due > most:
                self.generated += due - most
                due = most
            self.generated += due
            await self._insert(due)

    async def _insert(self, count: int) -> None:
        rows = self.orders(count) if count <= INLINE_ROWS else await asyncio.to_thread(self.orders, count)
        try:
            result = await self.ingest.insert(None, self.warehouse, "orders", rows)
        except IngestError as exc:
            self.failures += 1
            log.warning("live demo: %d orders were not inserted: %s (%s)", count, exc.message, exc.code)
            if exc.code == "rows_rejected":
                await self._load()  # someone else took these order ids: continue after theirs
            return
        except Exception:  # keep the demo alive, but loudly: this is a bug
            self.failures += 1
            log.exception("live demo: inserting orders failed")
            self._on_internal_error()
            return
        self.inserted += result["inserted"]

    async def _load(self) -> bool:
        """Read the catalogue the orders draw from; False when the warehouse cannot be read."""
        warehouse = self.ingest.warehouses[self.warehouse]
        try:
            products = await warehouse.execute(
                "SELECT product_id, category, unit_price, unit_cost FROM products ORDER BY product_id",
                timeout=30, row_cap=100_000)
            counts = await warehouse.execute(
                "SELECT (SELECT max(customer_id) FROM customers), (SELECT max(order_id) FROM orders)",
                timeout=30, row_cap=1)
        except WarehouseError as exc:
            log.warning("live demo: cannot read the demo warehouse (%s); retrying in %.0f s", exc.message, RETRY_S)
            return False
        self._products = [_Product(int(p), str(c), float(price), float(cost)) for p, c, price, cost in products.rows]
        customers, last_order = counts.rows[0]
        self._customers = int(customers or 0)
        self._next_id = max(self._next_id, int(last_order or 0) + 1)
        if not self._products or not self._customers:
            log.warning("live demo: the demo warehouse has no products or customers; retrying in %.0f s", RETRY_S)
            return False
        return True

    # -- one order ---------------------------------------------------------------------------

    def orders(self, count: int) -> list[dict[str, Any]]:
        """``count`` new orders as JSON rows (what an API client would send)."""
        return [self._order() for _ in range(count)]

    def _order(self) -> dict[str, Any]:
        rng = self._rng
        today = self.today or dt.date.today()
        years = max(0, today.year - FIRST_YEAR)
        product = self._products[min(len(self._products) - 1, int(rng.random() ** 1.7 * len(self._products)))]
        power, span = QUANTITY.get(product.category, SERVICES_QUANTITY)
        quantity = 1 + int(rng.random() ** power * span)
        channel = _pick(rng, CHANNELS)
        discount = rng.choice((0.10, 0.15, 0.20, 0.25)) if channel == "Partner" else _pick(rng, DISCOUNTS)
        unit_price = round(product.unit_price * (1 + 0.03 * years), 2)
        order_id, self._next_id = self._next_id, self._next_id + 1
        return {
            "order_id": order_id,
            "order_date": today.isoformat(),
            "customer_id": 1 + min(self._customers - 1, int(rng.random() ** 1.5 * self._customers)),
            "product_id": product.product_id,
            "quantity": quantity,
            "unit_price": unit_price,
            "discount": discount,
            "revenue": round(quantity * unit_price * (1 - discount), 2),
            "cost": round(quantity * product.unit_cost * (1 + 0.025 * years), 2),
            "channel": channel,
            "status": _pick(rng, STATUSES),
            "created_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds"),
        }


# -- the "Live sales" dashboard --------------------------------------------------------------------

LIVE_DASHBOARD_TITLE = "Live sales"
#: every widget refreshes when ``orders`` changes, and at least this often anyway
REFRESH = {"on_data_change": True, "interval_s": 30}


def live_widgets(today: dt.date, warehouse: str = "demo") -> list[dict[str, Any]]:
    """The widgets of the "Live sales" dashboard for the demo's ``today`` (add_widget specs)."""
    day = f"DATE '{today.isoformat()}'"  # a date's isoformat is digits and dashes only
    specs = [
        ("Today's revenue", "kpi", (0, 0, 4, 4),
         f"SELECT sum(revenue) AS revenue FROM orders WHERE order_date = {day} AND status <> 'cancelled'"),
        ("Orders per minute", "column", (4, 0, 8, 4),
         ("SELECT date_trunc('minute', created_at) AS minute, count(*) AS orders FROM orders "
          "WHERE created_at >= (SELECT max(created_at) FROM orders) - INTERVAL 30 MINUTE "
          "GROUP BY 1 ORDER BY 1")),
        ("Revenue by region today", "bar", (0, 4, 6, 6),
         ("SELECT c.region, sum(o.revenue) AS revenue FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
          f"WHERE o.order_date = {day} AND o.status <> 'cancelled' GROUP BY c.region ORDER BY revenue DESC")),
        ("Latest orders", "table", (6, 4, 6, 6),
         ("SELECT o.order_id, strftime(o.created_at, '%H:%M:%S') AS time_utc, c.customer_name AS customer, "
          "p.product_name AS product, o.quantity, o.revenue FROM orders o "
          "JOIN customers c ON c.customer_id = o.customer_id JOIN products p ON p.product_id = o.product_id "
          "ORDER BY o.created_at DESC NULLS LAST, o.order_id DESC LIMIT 10")),
    ]
    return [
        {"title": title, "question": None, "sql": sql, "warehouse": warehouse, "chart": {"type": chart, "settings": {}},
         "x": x, "y": y, "w": w, "h": h, "refresh": dict(REFRESH)}
        for title, chart, (x, y, w, h), sql in specs
    ]


async def _publish_nothing(*_args: Any, **_kwargs: Any) -> None:
    """Before the server runs, nobody is subscribed to anything."""


async def _drop_nobody(*_args: Any) -> int:
    return 0


async def ensure_live_dashboard(store: Any, *, today: dt.date, owner: str = "demo", warehouse: str = "demo") -> str:
    """Create the public "Live sales" dashboard of ``owner`` if missing; put back widgets that
    were removed or whose SQL, warehouse or refresh no longer match (e.g. another ``today``).
    Idempotent; returns the dashboard's id.

    Args:
        store: the opened :class:`~livebi.store.MetadataStore` (``owner`` must exist in it).
    """
    row = await store.get_user(username=owner)
    if row is None:
        raise ValueError(f"the live dashboard's owner {owner!r} is not a user")
    user = User(id=row["id"], username=row["username"])
    service = DashboardService(DashboardStore(store.engine), publish=_publish_nothing, drop_subscribers=_drop_nobody)
    mine = [d for d in await service.list_for(user) if d["owner"]["id"] == user.id and d["title"] == LIVE_DASHBOARD_TITLE]
    if mine:
        dashboard = await service.get(mine[0]["id"], user)
    else:
        dashboard = await service.create(user, title=LIVE_DASHBOARD_TITLE,
                                         description="Orders as they arrive (livebi demo --live-rate); every widget refreshes on new rows.")
    existing = {w["title"]: w for w in dashboard["widgets"]}
    ops: list[dict[str, Any]] = []
    for spec in live_widgets(today, warehouse):
        widget = existing.get(spec["title"])
        if widget is None:
            ops.append({"type": "add_widget", "widget": spec})
            continue
        stale = {key: spec[key] for key in ("sql", "warehouse", "refresh") if widget.get(key) != spec[key]}
        if stale:
            ops.append({"type": "update_widget", "widget_id": widget["id"], "fields": stale})
    if ops:
        await service.edit(dashboard["id"], user, ops)
    if not dashboard["public"]:
        await service.set_public(dashboard["id"], user, True)
    return dashboard["id"]
