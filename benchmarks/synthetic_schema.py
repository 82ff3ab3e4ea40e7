"""A generated 100-table ERP schema (and questions about it) for parse-latency measurements.

Sales, products, inventory, purchasing, logistics, HR, finance, support and marketing tables with
``<table>_id`` keys, declared foreign keys, dates, amounts and low-cardinality text columns whose
values fill the value index, as a connector plus the agent would build it. No database is
needed: parsing only reads the semantic model.
"""

from __future__ import annotations

import random

from livebi.agents.nlp import SemanticModel
from livebi.agents.nlp import lexicon as lx
from livebi.warehouse.base import Column, ForeignKey, Schema, Table

# table: (parents, extra columns "name:kind"); kinds: t(ext), n(umber), d(ate), i(nteger)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # sales
    "sales_regions": ((), ("region_name:t",)),
    "sales_territories": (("sales_regions",), ("territory_name:t", "country:t")),
    "sales_teams": (("sales_territories",), ("team_name:t",)),
    "customer_segments": ((), ("segment_name:t",)),
    "customers": (("customer_segments", "sales_territories"), ("customer_name:t", "industry:t", "country:t", "city:t", "signup_date:d", "credit_limit:n", "status:t")),
    "customer_addresses": (("customers",), ("address_type:t", "city:t", "country:t", "postal_code:t")),
    "customer_contacts": (("customers",), ("contact_name:t", "job_role:t", "email:t")),
    "sales_reps": (("sales_teams", "employees"), ("rep_name:t", "quota_amount:n", "hire_date:d")),
    "leads": (("sales_reps", "campaigns"), ("lead_name:t", "lead_source:t", "created_date:d", "score:i", "status:t")),
    "opportunities": (("customers", "sales_reps", "leads"), ("opportunity_name:t", "stage:t", "close_date:d", "expected_amount:n", "probability:n")),
    "quotes": (("opportunities", "customers"), ("quote_date:d", "quote_amount:n", "status:t")),
    "quote_lines": (("quotes", "products"), ("quantity:i", "unit_price:n", "discount:n")),
    "orders": (("customers", "sales_reps", "price_lists", "currencies"), ("order_date:d", "channel:t", "status:t", "total_amount:n", "shipping_cost:n")),
    "order_lines": (("orders", "products", "warehouses"), ("quantity:i", "unit_price:n", "discount:n", "line_total:n")),
    "order_status_history": (("orders",), ("status:t", "changed_at:d")),
    "returns": (("orders", "customers"), ("return_date:d", "reason:t", "refund_amount:n", "status:t")),
    "return_lines": (("returns", "order_lines"), ("quantity:i", "condition:t")),
    "promotions": ((), ("promotion_name:t", "start_date:d", "end_date:d", "discount_rate:n", "promotion_type:t")),
    "price_lists": (("currencies",), ("price_list_name:t", "valid_from:d")),
    "price_list_items": (("price_lists", "products"), ("list_price:n", "min_quantity:i")),
    "contracts": (("customers", "sales_reps"), ("contract_name:t", "start_date:d", "end_date:d", "contract_value:n", "contract_type:t")),
    "subscription_plans": ((), ("plan_name:t", "monthly_fee:n", "billing_period:t")),
    "subscriptions": (("customers", "subscription_plans"), ("start_date:d", "end_date:d", "mrr:n", "status:t")),
    "invoices": (("orders", "customers", "currencies"), ("invoice_date:d", "due_date:d", "invoice_amount:n", "tax_amount:n", "status:t")),
    "invoice_lines": (("invoices", "products"), ("quantity:i", "unit_price:n", "line_amount:n")),
    "payment_methods": ((), ("method_name:t", "provider:t")),
    "payments": (("invoices", "payment_methods"), ("payment_date:d", "payment_amount:n", "status:t")),
    "credit_notes": (("invoices", "customers"), ("credit_date:d", "credit_amount:n", "reason:t")),
    "refunds": (("payments", "returns"), ("refund_date:d", "refund_amount:n", "method:t")),
    "loyalty_programs": ((), ("program_name:t", "tier:t", "points_multiplier:n")),
    "loyalty_memberships": (("customers", "loyalty_programs"), ("joined_on:d", "points_balance:i", "tier:t")),
    "gift_cards": (("customers",), ("issued_on:d", "initial_value:n", "remaining_value:n", "status:t")),
    # products
    "product_families": ((), ("family_name:t",)),
    "product_categories": (("product_families",), ("category_name:t",)),
    "brands": ((), ("brand_name:t", "country:t")),
    "units_of_measure": ((), ("unit_name:t",)),
    "products": (("product_categories", "brands", "suppliers", "units_of_measure"), ("product_name:t", "sku:t", "list_price:n", "standard_cost:n", "weight_kg:n", "launch_date:d", "lifecycle_status:t")),
    "product_variants": (("products",), ("variant_name:t", "color:t", "size:t", "price:n")),
    "product_reviews": (("products", "customers"), ("review_date:d", "rating:i", "sentiment:t")),
    "product_bundles": ((), ("bundle_name:t", "bundle_price:n")),
    "bundle_items": (("product_bundles", "products"), ("quantity:i",)),
    # inventory
    "warehouses": (("offices",), ("warehouse_name:t", "country:t", "city:t", "capacity:i")),
    "warehouse_zones": (("warehouses",), ("zone_name:t", "temperature_class:t")),
    "bins": (("warehouse_zones",), ("bin_code:t", "bin_type:t")),
    "stock_levels": (("products", "warehouses"), ("snapshot_date:d", "on_hand:i", "reserved:i", "stock_value:n")),
    "stock_movements": (("products", "warehouses", "bins"), ("movement_date:d", "movement_type:t", "quantity:i")),
    "inventory_counts": (("warehouses", "employees"), ("count_date:d", "variance_quantity:i", "status:t")),
    "lots": (("products", "suppliers"), ("lot_number:t", "expiry_date:d", "quantity:i")),
    "serial_numbers": (("products", "lots"), ("serial:t", "status:t")),
    # purchasing
    "suppliers": ((), ("supplier_name:t", "country:t", "city:t", "rating:i", "payment_terms:t")),
    "supplier_contacts": (("suppliers",), ("contact_name:t", "email:t")),
    "purchase_orders": (("suppliers", "warehouses", "employees", "currencies"), ("po_date:d", "expected_date:d", "po_amount:n", "status:t")),
    "purchase_order_lines": (("purchase_orders", "products"), ("quantity:i", "unit_cost:n", "line_cost:n")),
    "receipts": (("purchase_orders", "warehouses"), ("receipt_date:d", "status:t")),
    "receipt_lines": (("receipts", "purchase_order_lines"), ("received_quantity:i", "rejected_quantity:i")),
    "supplier_invoices": (("suppliers", "purchase_orders"), ("invoice_date:d", "amount:n", "status:t")),
    "supplier_payments": (("supplier_invoices", "payment_methods"), ("payment_date:d", "amount:n")),
    # logistics
    "carriers": ((), ("carrier_name:t", "service_level:t")),
    "shipping_rates": (("carriers",), ("zone:t", "rate_per_kg:n")),
    "vehicles": (("carriers",), ("plate:t", "vehicle_type:t", "capacity_kg:n")),
    "drivers": (("carriers",), ("driver_name:t", "license_class:t")),
    "delivery_routes": (("warehouses", "vehicles", "drivers"), ("route_date:d", "distance_km:n", "stops:i")),
    "shipments": (("orders", "carriers", "warehouses", "delivery_routes"), ("ship_date:d", "delivery_date:d", "shipping_cost:n", "weight_kg:n", "status:t")),
    "shipment_items": (("shipments", "order_lines"), ("quantity:i",)),
    # HR
    "offices": ((), ("office_name:t", "country:t", "city:t")),
    "departments": (("offices", "cost_centers"), ("department_name:t",)),
    "job_titles": ((), ("title_name:t", "job_level:t")),
    "employees": (("departments", "job_titles", "offices"), ("employee_name:t", "hire_date:d", "gender:t", "employment_type:t", "base_salary:n")),
    "salaries": (("employees",), ("effective_date:d", "salary_amount:n", "bonus_amount:n")),
    "timesheets": (("employees", "projects"), ("work_date:d", "hours:n", "billable:t")),
    "projects": (("customers", "departments"), ("project_name:t", "start_date:d", "budget_amount:n", "status:t")),
    "leave_requests": (("employees",), ("start_date:d", "days:n", "leave_type:t", "status:t")),
    "trainings": ((), ("training_name:t", "provider:t", "cost:n")),
    "training_enrollments": (("trainings", "employees"), ("enrolled_on:d", "score:i", "status:t")),
    "performance_reviews": (("employees",), ("review_date:d", "rating:i", "outcome:t")),
    # finance
    "currencies": ((), ("currency_code:t", "currency_name:t")),
    "exchange_rates": (("currencies",), ("rate_date:d", "rate:n")),
    "fiscal_periods": ((), ("period_name:t", "period_start:d", "period_end:d", "quarter_label:t")),
    "cost_centers": ((), ("cost_center_name:t", "division:t")),
    "accounts": ((), ("account_name:t", "account_type:t", "account_group:t")),
    "journal_entries": (("fiscal_periods", "employees"), ("entry_date:d", "source:t", "status:t")),
    "journal_lines": (("journal_entries", "accounts", "cost_centers"), ("debit:n", "credit:n")),
    "budgets": (("fiscal_periods", "departments"), ("budget_name:t", "version:t")),
    "budget_lines": (("budgets", "accounts", "cost_centers"), ("planned_amount:n", "actual_amount:n")),
    "expense_categories": ((), ("expense_category_name:t",)),
    "expenses": (("employees", "expense_categories", "cost_centers", "currencies"), ("expense_date:d", "expense_amount:n", "status:t", "merchant:t")),
    "tax_rates": ((), ("tax_name:t", "country:t", "rate:n")),
    # support
    "sla_policies": ((), ("policy_name:t", "response_hours:i")),
    "tickets": (("customers", "employees", "sla_policies", "products"), ("opened_at:d", "closed_at:d", "priority:t", "ticket_channel:t", "status:t", "resolution_hours:n")),
    "ticket_comments": (("tickets", "employees"), ("created_at:d", "comment_type:t")),
    "knowledge_articles": (("employees", "products"), ("article_title:t", "published_date:d", "views:i")),
    "surveys": ((), ("survey_name:t", "sent_date:d")),
    "survey_responses": (("surveys", "customers", "tickets"), ("response_date:d", "nps_score:i", "csat_score:i")),
    # marketing
    "campaigns": (("campaign_channels",), ("campaign_name:t", "start_date:d", "end_date:d", "campaign_budget:n", "objective:t")),
    "campaign_channels": ((), ("channel_name:t",)),
    "ad_spend": (("campaigns",), ("spend_date:d", "impressions:i", "clicks:i", "spend_amount:n", "platform:t")),
    "web_sessions": (("customers", "campaigns"), ("session_date:d", "device:t", "page_views:i", "duration_seconds:n", "traffic_source:t")),
    "email_sends": (("campaigns", "customers"), ("sent_at:d", "opened:t", "clicked:t")),
    "events": (("offices",), ("event_name:t", "event_date:d", "event_type:t", "attendee_limit:i")),
    "event_registrations": (("events", "customers"), ("registered_on:d", "attended:t")),
}

VALUES = {
    "status": ["Open", "Closed", "Pending", "Cancelled", "Completed", "In Progress", "On Hold"],
    "country": ["United States", "Germany", "France", "United Kingdom", "Japan", "Brazil", "India", "Canada",
                "Australia", "Spain", "Italy", "Mexico", "Netherlands", "Sweden", "Singapore"],
    "city": ["New York", "Berlin", "Paris", "London", "Tokyo", "Sao Paulo", "Mumbai", "Toronto", "Sydney",
             "Madrid", "Milan", "Chicago", "Munich", "Lyon", "Osaka"],
    "channel": ["Online", "Retail", "Partner", "Direct"],
    "industry": ["Retail", "Manufacturing", "Healthcare", "Finance", "Education", "Technology", "Energy"],
    "priority": ["Low", "Medium", "High", "Urgent"],
    "stage": ["Prospecting", "Qualification", "Proposal", "Negotiation", "Won", "Lost"],
    "region_name": ["North America", "EMEA", "APAC", "LATAM"],
    "segment_name": ["Enterprise", "Mid Market", "Small Business", "Consumer"],
    "category_name": ["Laptops", "Monitors", "Phones", "Chairs", "Desks", "Software", "Printers", "Cables"],
    "family_name": ["Electronics", "Furniture", "Software", "Supplies"],
    "department_name": ["Sales", "Marketing", "Finance", "Engineering", "Support", "Operations", "HR"],
    "account_type": ["Asset", "Liability", "Equity", "Revenue", "Expense"],
    "platform": ["Google", "Meta", "LinkedIn", "TikTok"],
    "device": ["Desktop", "Mobile", "Tablet"],
    "lead_source": ["Webinar", "Referral", "Trade Show", "Organic", "Paid Search"],
    "movement_type": ["Receipt", "Pick", "Transfer", "Adjustment"],
    "leave_type": ["Vacation", "Sick", "Parental", "Unpaid"],
    "carrier_name": ["FastFreight", "BlueLine Logistics", "Parcel Pro", "Global Express"],
    "expense_category_name": ["Travel", "Meals", "Software", "Hardware", "Training"],
}
FALLBACK_VALUES = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]


def _kind(code: str) -> tuple[str, str]:
    return {"t": ("VARCHAR", "text"), "n": ("DECIMAL(14,2)", "number"), "d": ("DATE", "date"),
            "i": ("INTEGER", "number")}[code]


def _key(table: str) -> str:
    return "_".join(lx.singular(w) for w in table.split("_")) + "_id"


def synthetic_schema() -> Schema:
    tables = []
    rnd = random.Random(11)
    for name, (parents, extras) in TABLES.items():
        columns = [Column(_key(name), "INTEGER", "number")]
        fks = []
        for parent in parents:
            columns.append(Column(_key(parent), "INTEGER", "number"))
            fks.append(ForeignKey((_key(parent),), parent, (_key(parent),)))
        for spec in extras:
            column, code = spec.split(":")
            type_, kind = _kind(code)
            columns.append(Column(column, type_, kind))
        tables.append(Table(name, tuple(columns), (_key(name),), tuple(fks), rnd.randrange(100, 5_000_000)))
    assert len(tables) == 100, len(tables)
    return Schema(tuple(tables))


def synthetic_values(schema: Schema) -> dict[tuple[str, str], list[str]]:
    values = {}
    for table, column in SemanticModel.value_columns(schema):
        if column in VALUES:
            values[(table, column)] = VALUES[column]
        elif column.endswith(("_type", "_level", "_class", "_group", "source", "reason", "outcome", "objective")):
            values[(table, column)] = [f"{column.split('_')[0].title()} {v}" for v in FALLBACK_VALUES]
    return values


def synthetic_model() -> SemanticModel:
    schema = synthetic_schema()
    return SemanticModel.from_schema(schema, synthetic_values(schema), dialect="postgres")


def synthetic_questions(model: SemanticModel, n: int = 400) -> list[str]:
    """Questions in the benchmark's usual shapes, about random tables of the model."""
    rnd = random.Random(5)
    shapes = [
        "how many {plural} are there",
        "total {measure} by {dim}",
        "{measure} by {parent} in 2024",
        "top 5 {parents} by {measure}",
        "monthly {measure} last year",
        "average {measure} per {dim} in {value}",
        "{plural} with {measure} over 1000",
        "which {dim} has the most {plural}",
        "list {plural} in {value}",
        "{measure} by {dim} and quarter for the last 6 months",
        "how many {plural} by {parent} in Q2 2024",
        "compare {measure} in 2023 vs 2024 by {dim}",
    ]
    tables = [t for t in model.tables.values() if t.measures]
    out: list[str] = []
    while len(out) < n:
        info = rnd.choice(tables)
        dims = [c for c in info.columns.values() if c.role == "dimension"]
        parents = [model.tables[e.parent] for e in model.parents(info.name)]
        value = next((v for (t, c), vs in model.values.items() if t == info.name for v in vs[:1]), "Germany")
        fields = {
            "plural": info.plural,
            "measure": rnd.choice(info.measures).label,
            "dim": rnd.choice(dims).human if dims else "month",
            "parent": parents[0].singular if parents else "year",
            "parents": parents[0].plural if parents else info.plural,
            "value": value,
        }
        out.append(rnd.choice(shapes).format(**fields))
    return out
