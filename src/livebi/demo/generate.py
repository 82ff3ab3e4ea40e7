"""Generate the demo sales/finance warehouse (a DuckDB file).

The demo has to feel like a real company so that questions such as "revenue by region per
quarter" draw interesting charts: sales grow year over year, peak in Q4, regions differ in size,
customers buy more the longer they have been customers, and the finance tables (budget,
cash_flow) are derived from the same orders so they tell a consistent story.

Everything is deterministic for a given ``(rows, seed)``. The large ``orders`` table is
generated *inside DuckDB* from ``range()`` with hash-based pseudo-random numbers, so a million
rows take seconds; only the small product catalogue is built in Python.

Tables (all lower snake case): ``customers``, ``products``, ``orders``, ``budget``,
``cash_flow``. Primary and foreign keys are declared so schema introspection can find joins.
``orders.created_at`` is the wall-clock time a live feed recorded an order (the simulator of
:mod:`livebi.demo.live` fills it, so "orders per minute" can be charted); the generated history
knows only days and leaves it NULL.
"""

from __future__ import annotations

import datetime

import json
import os
import random
import tempfile
from pathlib import Path

import duckdb

#: Bump when the generated data changes shape, so ``ensure_demo`` regenerates old files.
GENERATOR_VERSION = 3

FIRST_YEAR = 2021
LAST_YEAR = 2025
#: Relative periods ("last quarter", "this year") on the demo count from here, the end of the
#: generated data, so they find rows whatever today's date is (``livebi demo`` sets ``today``).
DEMO_TODAY = datetime.date(LAST_YEAR, 12, 31)

# Regions are deliberately uneven so that charts by region are not five equal bars.
# (country, region, share of customers, cities)
COUNTRIES: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("United States", "North America", 0.30, ("New York", "San Francisco", "Chicago", "Austin", "Seattle")),
    ("Canada", "North America", 0.08, ("Toronto", "Vancouver", "Montreal")),
    ("United Kingdom", "Europe", 0.07, ("London", "Manchester", "Edinburgh")),
    ("Germany", "Europe", 0.07, ("Berlin", "Munich", "Hamburg")),
    ("France", "Europe", 0.05, ("Paris", "Lyon", "Toulouse")),
    ("Spain", "Europe", 0.03, ("Madrid", "Barcelona", "Valencia")),
    ("Italy", "Europe", 0.02, ("Milan", "Rome", "Turin")),
    ("Netherlands", "Europe", 0.02, ("Amsterdam", "Rotterdam", "Utrecht")),
    ("Sweden", "Europe", 0.01, ("Stockholm", "Gothenburg", "Malmo")),
    ("Japan", "Asia Pacific", 0.06, ("Tokyo", "Osaka", "Yokohama")),
    ("Australia", "Asia Pacific", 0.05, ("Sydney", "Melbourne", "Brisbane")),
    ("India", "Asia Pacific", 0.04, ("Bengaluru", "Mumbai", "Delhi")),
    ("Singapore", "Asia Pacific", 0.03, ("Singapore",)),
    ("South Korea", "Asia Pacific", 0.02, ("Seoul", "Busan", "Incheon")),
    ("Brazil", "Latin America", 0.04, ("Sao Paulo", "Rio de Janeiro", "Belo Horizonte")),
    ("Mexico", "Latin America", 0.03, ("Mexico City", "Guadalajara", "Monterrey")),
    ("Argentina", "Latin America", 0.01, ("Buenos Aires", "Cordoba", "Rosario")),
    ("Chile", "Latin America", 0.01, ("Santiago", "Valparaiso", "Concepcion")),
    ("United Arab Emirates", "Middle East & Africa", 0.025, ("Dubai", "Abu Dhabi", "Sharjah")),
    ("South Africa", "Middle East & Africa", 0.02, ("Johannesburg", "Cape Town", "Durban")),
    ("Saudi Arabia", "Middle East & Africa", 0.015, ("Riyadh", "Jeddah", "Dammam")),
)
REGIONS = ("North America", "Europe", "Asia Pacific", "Latin America", "Middle East & Africa")
SEGMENTS = (("Consumer", 0.45), ("Small Business", 0.30), ("Corporate", 0.18), ("Enterprise", 0.07))

# category -> subcategory -> (product nouns, min list price, max list price, cost ratio range)
CATALOG: dict[str, dict[str, tuple[tuple[str, ...], float, float, tuple[float, float]]]] = {
    "Electronics": {
        "Laptops": (("Laptop 14", "Laptop 15 Pro", "Ultrabook 13", "Workstation 16"), 699, 2899, (0.70, 0.82)),
        "Monitors": (("Monitor 24", "Monitor 27 QHD", "UltraWide 34", "4K Display 32"), 149, 1199, (0.65, 0.78)),
        "Phones": (("Smartphone", "Smartphone Max", "Desk Phone", "Conference Phone"), 89, 1299, (0.68, 0.80)),
        "Audio": (("Headset", "Wireless Earbuds", "Speakerphone", "Studio Headphones"), 39, 399, (0.45, 0.60)),
        "Accessories": (("Docking Station", "Keyboard", "Mouse", "Webcam HD"), 19, 299, (0.40, 0.55)),
    },
    "Furniture": {
        "Chairs": (("Ergonomic Chair", "Task Chair", "Executive Chair", "Stool"), 89, 1299, (0.50, 0.65)),
        "Desks": (("Standing Desk", "Writing Desk", "Corner Desk", "Desk Frame"), 199, 1499, (0.52, 0.66)),
        "Storage": (("Filing Cabinet", "Bookcase", "Locker", "Mobile Pedestal"), 79, 699, (0.48, 0.62)),
        "Tables": (("Meeting Table", "Cafe Table", "Training Table", "Side Table"), 99, 2499, (0.50, 0.64)),
    },
    "Office Supplies": {
        "Paper": (("Copy Paper Ream", "Notebook Pack", "Sticky Notes", "Envelopes Box"), 3, 49, (0.35, 0.55)),
        "Binders": (("Ring Binder", "Presentation Binder", "Binder Clips", "Sheet Protectors"), 2, 29, (0.30, 0.50)),
        "Writing": (("Ballpoint Pens", "Gel Pens", "Highlighters", "Whiteboard Markers"), 2, 39, (0.30, 0.50)),
        "Organizers": (("Desk Organizer", "Label Maker", "Stapler", "Document Tray"), 5, 89, (0.35, 0.55)),
    },
    "Software": {
        "Productivity": (("Office Suite", "Project Planner", "Notes Pro", "PDF Studio"), 49, 599, (0.08, 0.20)),
        "Security": (("Endpoint Protection", "Password Vault", "Firewall Manager", "Backup Cloud"), 29, 899, (0.10, 0.22)),
        "Analytics": (("BI Dashboard", "Data Prep", "Forecasting Suite", "Survey Insights"), 99, 1999, (0.10, 0.25)),
    },
    "Services": {
        "Consulting": (("Strategy Workshop", "IT Assessment", "Cloud Migration", "Process Review"), 1200, 15000, (0.45, 0.65)),
        "Support": (("Premium Support", "Onsite Support Day", "Managed Helpdesk", "Extended Warranty"), 99, 4999, (0.30, 0.50)),
        "Training": (("Admin Training", "End-User Course", "Certification Prep", "Analytics Bootcamp"), 199, 2999, (0.35, 0.55)),
        "Installation": (("Office Setup", "Network Install", "AV Installation", "Furniture Assembly"), 149, 3999, (0.40, 0.60)),
    },
}
BRANDS = {
    "Electronics": ("Apex", "Novatek", "Lumina", "Voltra", "Zenix"),
    "Furniture": ("Oakline", "Steelform", "Comforta", "Nordhaus", "Atelier"),
    "Office Supplies": ("PaperPro", "Inkwell", "Clipmate", "Officia", "Scribe"),
    "Software": ("CloudNine", "Bytewise", "Sentinel", "Quantica", "Orbit"),
    "Services": ("ProServe", "Northstar", "Pinnacle", "Keystone", "Vertex"),
}

# Sales grow every year and peak in Q4 (month weights, January first).
YEAR_WEIGHTS = {2021: 1.00, 2022: 1.22, 2023: 1.45, 2024: 1.72, 2025: 2.02}
MONTH_WEIGHTS = (0.80, 0.78, 0.92, 0.90, 0.95, 0.93, 0.88, 0.90, 1.00, 1.12, 1.38, 1.55)

FIRST_NAMES = (
    "James", "Mary", "Liam", "Olivia", "Noah", "Emma", "Sofia", "Lucas", "Mia", "Ethan", "Aisha", "Yuki",
    "Hiroshi", "Priya", "Arjun", "Chen", "Mei", "Carlos", "Lucia", "Mateo", "Valentina", "Omar", "Fatima",
    "Hans", "Greta", "Pierre", "Camille", "Giulia", "Marco", "Sven", "Ingrid", "Daniel", "Grace", "Kwame",
    "Thandi", "Jin", "Ana", "Diego", "Elena", "Ravi",
)
LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson",
    "Tanaka", "Sato", "Kim", "Park", "Patel", "Sharma", "Wang", "Li", "Silva", "Santos", "Muller",
    "Schmidt", "Dubois", "Bernard", "Rossi", "Ferrari", "Andersson", "Nilsson", "Haddad", "Khan",
    "Mensah", "Naidoo", "Novak", "Costa", "Fernandez", "Romero", "Ito", "Nguyen", "Clark", "Lewis",
)
COMPANY_WORDS = (
    "Blue", "River", "Summit", "Granite", "Harbor", "Maple", "Silver", "Pioneer", "Crescent", "Evergreen",
    "Golden", "Atlas", "Beacon", "Cedar", "Falcon", "Horizon", "Iron", "Juniper", "Liberty", "Meridian",
    "Northwind", "Orchid", "Pacific", "Quantum", "Redwood", "Sterling", "Titan", "Unity", "Vista", "Willow",
)
COMPANY_NOUNS = (
    "Logistics", "Holdings", "Systems", "Partners", "Labs", "Foods", "Health", "Retail", "Energy", "Media",
    "Capital", "Motors", "Designs", "Analytics", "Networks", "Builders", "Pharma", "Textiles", "Studios",
    "Consulting",
)
COMPANY_SUFFIXES = ("Inc", "LLC", "Ltd", "GmbH", "Group", "Co", "SA", "Corp")

DEPARTMENTS = (  # share of regional revenue each department budgets for
    ("Sales", 0.12), ("Marketing", 0.08), ("R&D", 0.10), ("Operations", 0.07), ("G&A", 0.05),
)

DDL = """
CREATE TABLE customers (
    customer_id   INTEGER PRIMARY KEY,
    customer_name VARCHAR NOT NULL,
    segment       VARCHAR NOT NULL,
    country       VARCHAR NOT NULL,
    region        VARCHAR NOT NULL,
    city          VARCHAR NOT NULL,
    signup_date   DATE NOT NULL
);
CREATE TABLE products (
    product_id   INTEGER PRIMARY KEY,
    product_name VARCHAR NOT NULL,
    category     VARCHAR NOT NULL,
    subcategory  VARCHAR NOT NULL,
    unit_price   DECIMAL(12,2) NOT NULL,
    unit_cost    DECIMAL(12,2) NOT NULL
);
CREATE TABLE orders (
    order_id    INTEGER PRIMARY KEY,
    order_date  DATE NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    product_id  INTEGER NOT NULL REFERENCES products (product_id),
    quantity    INTEGER NOT NULL,
    unit_price  DECIMAL(12,2) NOT NULL,
    discount    DOUBLE NOT NULL,
    revenue     DECIMAL(14,2) NOT NULL,
    cost        DECIMAL(14,2) NOT NULL,
    channel     VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,
    created_at  TIMESTAMP  -- when a live feed recorded the order (UTC); NULL in the generated history
);
CREATE TABLE budget (
    month         DATE NOT NULL,
    department    VARCHAR NOT NULL,
    region        VARCHAR NOT NULL,
    budget_amount DECIMAL(14,2) NOT NULL,
    actual_amount DECIMAL(14,2) NOT NULL,
    PRIMARY KEY (month, department, region)
);
CREATE TABLE cash_flow (
    month       DATE NOT NULL,
    category    VARCHAR NOT NULL,
    subcategory VARCHAR NOT NULL,
    amount      DECIMAL(14,2) NOT NULL,
    PRIMARY KEY (month, category, subcategory)
);
"""


def generate_demo(path: Path, rows: int = 1_000_000, *, seed: int = 42) -> None:
    """Create (or replace) the demo warehouse at ``path``.

    The database is written to a temporary file next to ``path`` and renamed over it only when
    complete, so a reader never sees a half-built warehouse and a crash leaves the old one.

    Args:
        path: the DuckDB file to create.
        rows: number of rows in ``orders``; customers are ``rows / 100`` (at least 200).
        seed: the same seed and row count always produce the same data.
    """
    if rows < 1:
        raise ValueError("rows must be positive")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # DuckDB refuses to open an empty file as a database
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("SET enable_progress_bar = false")  # no progress bar on the terminal
            _build(con, rows=rows, seed=seed)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            leftover.unlink(missing_ok=True)
    # A WAL of the replaced database would be replayed onto the new one: drop it.
    Path(str(path) + ".wal").unlink(missing_ok=True)


def ensure_demo(data_dir: Path, rows: int) -> Path:
    """Return ``data_dir/demo.duckdb``, generating it if missing or built with other settings.

    The row count and generator version live in a sidecar ``demo.duckdb.json`` so the warehouse
    itself holds only business tables.
    """
    data_dir = Path(data_dir)
    path = data_dir / "demo.duckdb"
    meta_path = data_dir / "demo.duckdb.json"
    wanted = {"rows": rows, "generator_version": GENERATOR_VERSION}
    if path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if all(meta.get(k) == v for k, v in wanted.items()):
            return path
    generate_demo(path, rows)
    tmp_meta = meta_path.with_name(meta_path.name + f".{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps({**wanted, "seed": 42}))
    os.replace(tmp_meta, meta_path)
    return path


# --------------------------------------------------------------------------------------------
# building blocks


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_sql_str(v) for v in values) + "]"


def _products(seed: int) -> list[tuple]:
    """The ~200-product catalogue: 10 products in each of the 20 subcategories."""
    rng = random.Random(seed)
    products: list[tuple] = []
    per_subcategory = 10
    # Interleave subcategories so that popular (low) product ids span every category.
    groups = [
        (category, subcategory, spec)
        for category, subs in CATALOG.items()
        for subcategory, spec in subs.items()
    ]
    seen: set[str] = set()
    for k in range(per_subcategory):
        for category, subcategory, (nouns, lo, hi, (c_lo, c_hi)) in groups:
            brand = BRANDS[category][(k + rng.randrange(5)) % 5]
            noun = nouns[k % len(nouns)]
            series = ("", " Plus", " Pro", " Max", " Lite", " X", " S", " Go", " One", " Elite")[k]
            name = f"{brand} {noun}{series}"
            while name in seen:  # keep names unique: they are what people ask about
                name += " II"
            seen.add(name)
            # Log-uniform prices look like a real price list (many cheap, few expensive items).
            price = round(lo * (hi / lo) ** rng.random(), 2)
            if price > 20:
                price = round(price) - 0.01  # charm pricing: 149.99
            cost = round(price * rng.uniform(c_lo, c_hi), 2)
            products.append((len(products) + 1, name, category, subcategory, price, cost))
    return products


def _weighted_buckets_sql(name: str, weights: list[tuple[int, float]], resolution: int) -> str:
    """A temp table mapping ``bucket`` in ``[0, resolution)`` to a key, with P(key) ∝ weight.

    Joining on an integer bucket is an equi-join, which DuckDB runs as a fast hash join,
    unlike a range join on cumulative weights.
    """
    total = sum(w for _, w in weights)
    bounds: list[tuple[int, int, int]] = []
    acc = 0.0
    lo = 0
    for key, w in weights:
        acc += w
        hi = resolution if key == weights[-1][0] else round(acc / total * resolution)
        bounds.append((key, lo, hi))
        lo = hi
    values = ", ".join(f"({k}, {lo}, {hi})" for k, lo, hi in bounds)
    return f"""
        CREATE TEMP TABLE {name} AS
        SELECT b.range::INTEGER AS bucket, w.key
        FROM range({resolution}) b
        JOIN (VALUES {values}) w(key, lo, hi) ON b.range >= w.lo AND b.range < w.hi
    """


def _build(con: duckdb.DuckDBPyConnection, *, rows: int, seed: int) -> None:
    n_customers = max(200, rows // 100)
    seed = int(seed)

    con.execute(DDL)
    # rnd(i, salt): a deterministic uniform number in [0, 1) per (row, purpose, seed).
    # TEMP objects are never persisted, so the warehouse keeps only business tables.
    con.execute(
        f"CREATE TEMP MACRO rnd(i, salt) AS (hash(i, salt, {seed}) % 1000003)::DOUBLE / 1000003"
    )
    con.execute(
        f"CREATE TEMP MACRO pick(arr, i, salt) AS arr[1 + (hash(i, salt, {seed}) % len(arr))::INTEGER]"
    )

    # ---- products (small: built in Python)
    products = _products(seed)
    # One VALUES statement: executemany() costs ~5 ms per row in DuckDB.
    con.execute(
        "INSERT INTO products VALUES "
        + ", ".join(
            f"({pid}, {_sql_str(name)}, {_sql_str(cat)}, {_sql_str(sub)}, {price:.2f}, {cost:.2f})"
            for pid, name, cat, sub, price, cost in products
        )
    )
    n_products = len(products)

    # ---- customers
    country_values = ", ".join(
        f"({i}, {_sql_str(c)}, {_sql_str(r)}, {_sql_list(cities)})"
        for i, (c, r, _, cities) in enumerate(COUNTRIES)
    )
    con.execute(
        f"CREATE TEMP TABLE countries AS SELECT * FROM (VALUES {country_values}) t(key, country, region, cities)"
    )
    con.execute(_weighted_buckets_sql("country_buckets", [(i, c[2]) for i, c in enumerate(COUNTRIES)], 1000))
    con.execute(_weighted_buckets_sql("segment_buckets", [(i, s[1]) for i, s in enumerate(SEGMENTS)], 100))
    segment_names = _sql_list([s for s, _ in SEGMENTS])
    # Customer ids are in signup order: id k signed up at fraction k/n of the signup window,
    # which lets orders pick only customers who had already signed up (see below).
    signup_start, signup_days = "DATE '2019-01-01'", 6 * 365 + 270
    con.execute(
        f"""
        INSERT INTO customers
        SELECT
            i + 1 AS customer_id,
            CASE WHEN seg.key = 0
                 THEN pick({_sql_list(FIRST_NAMES)}, i, 11) || ' ' || pick({_sql_list(LAST_NAMES)}, i, 12)
                 ELSE pick({_sql_list(COMPANY_WORDS)}, i, 13) || ' ' || pick({_sql_list(COMPANY_NOUNS)}, i, 14)
                      || ' ' || pick({_sql_list(COMPANY_SUFFIXES)}, i, 15)
            END AS customer_name,
            {segment_names}[seg.key + 1] AS segment,
            c.country,
            c.region,
            pick(c.cities, i, 16) AS city,
            {signup_start} + (i * {signup_days} // {n_customers})::INTEGER AS signup_date
        FROM (SELECT range AS i FROM range({n_customers})) g
        JOIN country_buckets cb ON cb.bucket = hash(g.i, 1, {seed}) % 1000
        JOIN countries c ON c.key = cb.key
        JOIN segment_buckets sb ON sb.bucket = hash(g.i, 2, {seed}) % 100
        JOIN (SELECT range AS key FROM range(4)) seg ON seg.key = sb.key
        ORDER BY customer_id
        """
    )

    # ---- orders
    months = [
        (y * 12 + m, YEAR_WEIGHTS[y] * MONTH_WEIGHTS[m])
        for y in range(FIRST_YEAR, LAST_YEAR + 1)
        for m in range(12)
    ]
    con.execute(_weighted_buckets_sql("month_buckets", months, 100_000))
    con.execute(
        f"""
        CREATE TEMP TABLE raw_orders AS
        WITH dated AS (
            SELECT
                g.i,
                make_date((mb.key // 12)::INTEGER, (mb.key % 12 + 1)::INTEGER, 1) AS month_start,
                (mb.key // 12)::INTEGER AS year
            FROM (SELECT range AS i FROM range({rows})) g
            JOIN month_buckets mb ON mb.bucket = hash(g.i, 21, {seed}) % 100000
        ),
        placed AS (
            SELECT
                i, year,
                month_start + floor(rnd(i, 22) * (last_day(month_start) - month_start + 1))::INTEGER
                    AS order_date
            FROM dated
        ),
        picked AS (
            SELECT
                i, year, order_date,
                -- only customers who have signed up by the order date; older ones buy more
                1 + floor(pow(rnd(i, 23), 1.5) * least({n_customers},
                    greatest(1, (order_date - {signup_start}) * {n_customers} // {signup_days})))::INTEGER
                    AS customer_id,
                -- low product ids are the best sellers
                1 + floor(pow(rnd(i, 24), 1.7) * {n_products})::INTEGER AS product_id
            FROM placed
        ),
        priced AS (
            SELECT
                o.i, o.order_date, o.customer_id, o.product_id, o.year,
                CASE p.category
                    WHEN 'Office Supplies' THEN 1 + floor(pow(rnd(o.i, 25), 2) * 40)
                    WHEN 'Electronics' THEN 1 + floor(pow(rnd(o.i, 25), 2) * 8)
                    WHEN 'Furniture' THEN 1 + floor(pow(rnd(o.i, 25), 2) * 6)
                    WHEN 'Software' THEN 1 + floor(pow(rnd(o.i, 25), 2) * 25)
                    ELSE 1 + floor(pow(rnd(o.i, 25), 3) * 3)  -- services: mostly one engagement
                END::INTEGER AS quantity,
                -- list prices rise ~3 % a year, costs ~2.5 %
                round(p.unit_price * (1 + 0.03 * (o.year - {FIRST_YEAR})), 2)::DECIMAL(12,2) AS unit_price,
                p.unit_cost * (1 + 0.025 * (o.year - {FIRST_YEAR})) AS unit_cost,
                CASE
                    WHEN c.segment = 'Enterprise' AND rnd(o.i, 26) < 0.55 THEN 'Direct Sales'
                    WHEN c.segment = 'Consumer' AND rnd(o.i, 26) < 0.35 THEN 'Online'
                    WHEN rnd(o.i, 27) < 0.40 THEN 'Online'
                    WHEN rnd(o.i, 27) < 0.65 THEN 'Retail'
                    WHEN rnd(o.i, 27) < 0.82 THEN 'Partner'
                    ELSE 'Direct Sales'
                END AS channel
            FROM picked o
            JOIN products p USING (product_id)
            JOIN customers c USING (customer_id)
        )
        SELECT
            i, order_date, customer_id, product_id, quantity, unit_price,
            discount,
            round(quantity * unit_price * (1 - discount), 2)::DECIMAL(14,2) AS revenue,
            round(quantity * unit_cost, 2)::DECIMAL(14,2) AS cost,
            channel,
            CASE
                WHEN rnd(i, 29) < (CASE channel WHEN 'Online' THEN 0.90 ELSE 0.93 END) THEN 'completed'
                WHEN rnd(i, 29) < 0.965 THEN 'returned'
                ELSE 'cancelled'
            END AS status
        FROM (
            SELECT *,
                CASE
                    WHEN channel = 'Partner' THEN [0.10, 0.15, 0.20, 0.25][1 + floor(rnd(i, 28) * 4)::INTEGER]
                    WHEN rnd(i, 28) < 0.62 THEN 0.0
                    WHEN rnd(i, 28) < 0.80 THEN 0.05
                    WHEN rnd(i, 28) < 0.91 THEN 0.10
                    WHEN rnd(i, 28) < 0.97 THEN 0.15
                    ELSE 0.20
                END::DOUBLE AS discount
            FROM priced
        )
        """
    )
    con.execute(
        """
        INSERT INTO orders
        SELECT row_number() OVER (ORDER BY order_date, i)::INTEGER AS order_id,
               order_date, customer_id, product_id, quantity, unit_price, discount,
               revenue, cost, channel, status, NULL AS created_at
        FROM raw_orders
        ORDER BY order_id
        """
    )
    con.execute("DROP TABLE raw_orders")

    # ---- monthly revenue by region: the base of the finance tables
    con.execute(
        f"""
        CREATE TEMP TABLE monthly AS
        SELECT m.month, r.region,
               coalesce(sum(o.revenue) FILTER (WHERE o.status = 'completed'), 0)::DOUBLE AS revenue,
               coalesce(sum(o.cost) FILTER (WHERE o.status = 'completed'), 0)::DOUBLE AS cost
        FROM (SELECT (DATE '{FIRST_YEAR}-01-01' + INTERVAL (range) MONTH)::DATE AS month
              FROM range({(LAST_YEAR - FIRST_YEAR + 1) * 12})) m
        CROSS JOIN (SELECT unnest({_sql_list(list(REGIONS))}) AS region) r
        LEFT JOIN (
            SELECT date_trunc('month', o.order_date)::DATE AS month, c.region, o.revenue, o.cost, o.status
            FROM orders o JOIN customers c USING (customer_id)
        ) o ON o.month = m.month AND o.region = r.region
        GROUP BY ALL
        """
    )

    # ---- budget: planned from last year's revenue (+10 %); actuals drift around the plan,
    # marketing overspends in Q4 and R&D underspends, so variance questions have answers.
    dept_values = ", ".join(f"({_sql_str(d)}, {share}, {i})" for i, (d, share) in enumerate(DEPARTMENTS))
    con.execute(
        f"""
        INSERT INTO budget
        SELECT
            m.month, d.department, m.region,
            round(plan * d.share * (0.96 + 0.08 * rnd(k, 31)), 2)::DECIMAL(14,2) AS budget_amount,
            round(plan * d.share * (0.96 + 0.08 * rnd(k, 31)) * (
                0.90 + 0.18 * rnd(k, 32)
                + CASE WHEN d.department = 'Marketing' AND month(m.month) >= 10 THEN 0.12 ELSE 0 END
                - CASE WHEN d.department = 'R&D' THEN 0.05 ELSE 0 END
            ), 2)::DECIMAL(14,2) AS actual_amount
        FROM (
            SELECT month, region,
                   coalesce(lag(revenue, 12) OVER (PARTITION BY region ORDER BY month) * 1.10,
                            revenue * 0.98) AS plan,
                   row_number() OVER (ORDER BY month, region) AS rn
            FROM monthly
        ) m
        CROSS JOIN (VALUES {dept_values}) d(department, share, idx)
        CROSS JOIN LATERAL (SELECT m.rn * 10 + d.idx AS k) key
        ORDER BY m.month, d.department, m.region
        """
    )

    # ---- cash flow: receipts and payments follow sales; investing and financing are lumpy.
    con.execute(
        """
        INSERT INTO cash_flow
        WITH t AS (
            SELECT month, sum(revenue::DECIMAL(18, 2))::DOUBLE AS revenue, sum(cost::DECIMAL(18, 2))::DOUBLE AS cost,
                   row_number() OVER (ORDER BY month) AS k,
                   month(month) AS mo, year(month) AS yr
            FROM monthly GROUP BY month
        ),
        flows AS (
            SELECT month, 'Operating' AS category, 'Customer Receipts' AS subcategory,
                   revenue * (0.97 + 0.03 * rnd(k, 41)) AS amount FROM t
            UNION ALL SELECT month, 'Operating', 'Supplier Payments', -cost * (0.95 + 0.08 * rnd(k, 42)) FROM t
            UNION ALL SELECT month, 'Operating', 'Payroll', -revenue * (0.16 + 0.02 * rnd(k, 43)) FROM t
            UNION ALL SELECT month, 'Operating', 'Rent & Utilities',
                   -revenue * (0.025 + 0.005 * rnd(k, 44)) FROM t
            UNION ALL SELECT month, 'Operating', 'Taxes',
                   CASE WHEN mo IN (3, 6, 9, 12) THEN -revenue * 3 * 0.045 ELSE 0 END FROM t
            UNION ALL SELECT month, 'Investing', 'Capital Expenditure', -revenue * (0.02 + 0.04 * rnd(k, 45)) FROM t
            UNION ALL SELECT month, 'Investing', 'Asset Sales',
                   CASE WHEN rnd(k, 46) < 0.15 THEN revenue * 0.02 ELSE 0 END FROM t
            UNION ALL SELECT month, 'Investing', 'Acquisitions',
                   CASE WHEN yr * 100 + mo IN (202207, 202404) THEN -revenue * 2.5 ELSE 0 END FROM t
            UNION ALL SELECT month, 'Financing', 'Debt Issuance',
                   CASE WHEN yr * 100 + mo IN (202101, 202206, 202403) THEN revenue * 3 ELSE 0 END FROM t
            UNION ALL SELECT month, 'Financing', 'Debt Repayment',
                   CASE WHEN mo IN (3, 6, 9, 12) THEN -revenue * 0.08 ELSE 0 END FROM t
            UNION ALL SELECT month, 'Financing', 'Dividends',
                   CASE WHEN yr >= 2023 AND mo IN (3, 6, 9, 12) THEN -revenue * 0.06 ELSE 0 END FROM t
            UNION ALL SELECT month, 'Financing', 'Share Buybacks',
                   CASE WHEN yr >= 2024 AND mo IN (5, 11) THEN -revenue * 0.3 ELSE 0 END FROM t
        )
        SELECT month, category, subcategory, round(amount, 2)::DECIMAL(14,2)
        FROM flows
        WHERE round(amount, 2) <> 0
        ORDER BY month, category, subcategory
        """
    )
    con.execute("DROP TABLE monthly")
