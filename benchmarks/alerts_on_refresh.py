"""What alerts add to a widget refresh: the time of ``AlertService.on_refresh`` on a real store.

The live service awaits ``on_refresh(dashboard_id, widget_id, data)`` after every refresh of a
widget, so its cost is on the refresh path. Measured on a metadata store (SQLite file by default,
or ``--store postgresql://...``) for a widget with 0 alerts (the common case: one indexed
lookup), with N alerts that do not change state (lookup + evaluation, no write), and with N
alerts that all cross (a compare-and-set write, a role check and a publication each).

    .venv/bin/python benchmarks/alerts_on_refresh.py
    .venv/bin/python benchmarks/alerts_on_refresh.py --alerts 100 --rounds 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from livebi.auth import User
from livebi.dashboards.model import apply_edit, new_dashboard
from livebi.live.alert_service import AlertService
from livebi.store import MetadataStore
from livebi.store.alerts import AlertStore
from livebi.store.dashboards import DashboardStore


def result(n: float) -> dict:
    return {"columns": ["region", "revenue"], "column_kinds": ["text", "number"],
            "rows": [["north", n / 2], ["south", n]], "warehouse": "demo"}


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms"


async def main(store_url: str, alerts: int, rounds: int) -> None:
    store = await MetadataStore.open(store_url)
    try:
        users = [await store.add_user(f"user{i}", "x") for i in range(alerts)]
        owner = User(users[0]["id"], users[0]["username"])
        dashboards = DashboardStore(store.engine)
        snap = new_dashboard(dashboard_id="d_bench", title="Bench", description="", owner=owner.public(), now="now")
        snap["public"] = True
        await dashboards.create(snap)
        await dashboards.set_public("d_bench", True)
        ids = iter(["w_alerts", "w_plain"])
        edit = apply_edit(snap, [{"type": "add_widget", "widget": {"title": "Revenue", "sql": "SELECT 1"}},
                                 {"type": "add_widget", "widget": {"title": "Other", "sql": "SELECT 1"}}],
                          now="now", new_widget_id=lambda: next(ids))
        await dashboards.apply_edit("d_bench", expected_version=0, snapshot=edit.snapshot, user_id=owner.id,
                                    updates=[u.record() for u in edit.updates])
        published = 0

        async def publish(channel: str, type: str, data: dict) -> None:
            nonlocal published
            published += 1

        service = AlertService(AlertStore(store.engine), publish, dashboards, max_per_user=10)
        for row in users:
            await service.create(User(row["id"], row["username"]), dashboard_id="d_bench", widget_id="w_alerts",
                                 op=">", threshold=100)

        async def timed(widget: str, values) -> list[float]:
            samples = []
            for value in values:
                started = time.perf_counter()
                await service.on_refresh("d_bench", widget, result(value))
                samples.append(time.perf_counter() - started)
            return samples

        await timed("w_alerts", [50])  # every alert evaluated once: state below
        plain = await timed("w_plain", [50] * rounds)
        steady = await timed("w_alerts", [60 + i % 10 for i in range(rounds)])
        crossing_rounds = max(2, rounds // 10) // 2 * 2
        crossing = await timed("w_alerts", [500 if i % 2 == 0 else 50 for i in range(crossing_rounds)])
        fired = crossing[0::2]
        print(f"store {store.engine.dialect.name}, {alerts} alerts on one widget, {rounds} refreshes")
        print(f"  widget without alerts            {ms(plain)}")
        print(f"  {alerts} alerts, no state change      {ms(steady)}")
        print(f"  {alerts} alerts all crossing          {ms(fired)}   ({published} notifications in all)")
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="metadata store URL (default: a temporary SQLite file)")
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.store or f"sqlite:///{Path(tmp) / 'meta.db'}", args.alerts, args.rounds))
