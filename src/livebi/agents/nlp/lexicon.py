"""The English the parser knows, independent of any schema.

Everything schema-specific (table and column names, values) is derived at run time by
:mod:`livebi.agents.nlp.model`; this module only holds generic BI vocabulary: aggregation
words, time grains, comparison phrases, abbreviations found in column names, and the few
measure concepts (revenue, cost, quantity, price) that let the parser derive a measure a
schema does not store. Keeping the word lists here, away from the logic, is what lets the
parser grow new phrasings without touching its algorithm.
"""

from __future__ import annotations

import re

# -- identifiers -> words ---------------------------------------------------------------------

#: Abbreviations commonly found in column names, expanded when building human names.
ABBREVIATIONS: dict[str, str] = {
    "acct": "account", "addr": "address", "amt": "amount", "avg": "average", "bal": "balance",
    "cat": "category", "cnt": "count", "ctry": "country", "cust": "customer", "dept": "department",
    "desc": "description", "dt": "date", "emp": "employee", "mgr": "manager", "mo": "month",
    "nbr": "number", "num": "number", "org": "organization", "pct": "percent", "prod": "product",
    "qty": "quantity", "rev": "revenue", "seg": "segment", "subcat": "subcategory",
    "tot": "total", "txn": "transaction", "yr": "year", "loc": "location", "cty": "city",
    "ts": "timestamp", "sku": "sku", "uom": "unit", "usr": "user", "vol": "volume",
}

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def identifier_words(identifier: str) -> list[str]:
    """Split ``BillingCountry`` / ``order_date`` / ``cust_seg`` into expanded lowercase words."""
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", identifier):
        for word in _CAMEL.findall(part):
            lowered = word.lower()
            if lowered in ABBREVIATION_PHRASES:  # "fname" -> "first name"
                words.extend(ABBREVIATION_PHRASES[lowered])
            else:
                words.append(ABBREVIATIONS.get(lowered, lowered))
    # "LName" splits to "l name": a name's initial stands for first / last / middle
    return [NAME_INITIALS[w] if w in NAME_INITIALS and nxt == "name" else w
            for w, nxt in zip(words, words[1:] + [""])]


def humanize(identifier: str) -> str:
    """``BillingCountry`` -> ``"billing country"``; ``cust_seg`` -> ``"customer segment"``."""
    return " ".join(identifier_words(identifier))


def snake(words: str) -> str:
    """``"total revenue"`` -> ``"total_revenue"``: a result-column alias from human words."""
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_") or "value"


# -- singular / plural ------------------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "person": "people", "child": "children", "man": "men", "woman": "women",
    "datum": "data", "criterion": "criteria", "analysis": "analyses",
}
_IRREGULAR_SINGULARS = {plural: single for single, plural in _IRREGULAR_PLURALS.items()}
_UNCHANGING = {"series", "species", "news", "sales", "status", "data", "analytics", "info",
               "address", "business", "class", "process", "gas", "bus", "census", "campus"}


def singular(word: str) -> str:
    """Best-effort English singular of one lowercase word."""
    if word in _IRREGULAR_SINGULARS:
        return _IRREGULAR_SINGULARS[word]
    if word in _UNCHANGING or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return word[:-2]
    if word.endswith("ss") or word.endswith("us") or word.endswith("is"):
        return word
    if word.endswith("s"):
        return word[:-1]
    return word


def plural(word: str) -> str:
    """Best-effort English plural of one lowercase word."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word in _UNCHANGING:
        return word
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    return word + "s"


def phrase_variants(words: list[str]) -> set[tuple[str, ...]]:
    """A phrase and its forms with the last word singular or plural."""
    if not words:
        return set()
    head, last = words[:-1], words[-1]
    return {tuple(words), tuple(head + [singular(last)]), tuple(head + [plural(singular(last))])}


#: last words of table names that people say differently ("order lines" for OrderDetail)
TABLE_WORD_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "detail": ("line", "item"), "line": ("item", "detail"), "item": ("line",),
}

# -- question vocabulary ----------------------------------------------------------------------

#: Words and phrases that pick an aggregation; longest phrases are matched first.
AGGREGATIONS: dict[tuple[str, ...], str] = {
    ("sum", "of"): "sum", ("sum",): "sum", ("total",): "sum", ("totals",): "sum",
    ("overall",): "sum", ("combined",): "sum", ("cumulative",): "sum",
    ("average",): "avg", ("avg",): "avg", ("mean",): "avg", ("typical",): "avg",
    ("median",): "median",
    ("minimum",): "min", ("min",): "min", ("lowest",): "min", ("smallest",): "min",
    ("cheapest",): "min", ("least",): "min", ("earliest",): "min", ("first",): "min",
    ("maximum",): "max", ("max",): "max", ("highest",): "max", ("largest",): "max",
    ("biggest",): "max", ("greatest",): "max", ("most", "expensive"): "max",
    ("latest",): "max", ("last",): "max", ("peak",): "max",
    ("count", "of"): "count", ("count",): "count", ("number", "of"): "count",
    ("how", "many"): "count", ("#", "of"): "count", ("amount", "of"): "sum",
}

#: Words that turn a count into a count of distinct things.
DISTINCT_WORDS = {"distinct", "unique", "different", "individual"}

#: Ranking words (``top 5``, ``bottom 3``, ``which region has the most ...``).
RANK_DESC = {"top", "best", "most", "highest", "largest", "biggest", "greatest", "leading"}
RANK_ASC = {"bottom", "worst", "least", "lowest", "smallest", "fewest", "weakest"}
#: how a listing is ordered ("sorted by price", "in descending order", "alphabetically")
ORDER_VERBS = {"sorted", "sort", "ordered", "order", "arranged", "ranked"}
ORDER_DIRECTIONS = {"descending": "desc", "ascending": "asc", "decreasing": "desc", "increasing": "asc",
                    "alphabetically": "asc", "alphabetical": "asc"}
#: "from highest to lowest": the first word is where the listing starts
ORDER_SPANS = {(first, "to"): direction for direction, words in (
    ("desc", ("highest", "largest", "biggest", "most", "greatest", "latest", "newest", "longest")),
    ("asc", ("lowest", "smallest", "least", "fewest", "earliest", "shortest")))
    for first in words}
ORDER_SPANS.update({(first, "to"): direction for direction, words in (
    ("desc", ("old", "oldest", "high", "large", "big", "new", "late", "long", "most", "more", "heavy", "tall")),
    ("asc", ("young", "youngest", "low", "small", "little", "early", "short", "least", "less", "light", "few")))
    for first in words})
#: "best-selling", "top sellers", "worst selling": a ranking by sales
SALES_RANK_WORDS = {"best", "top", "worst", "least", "lowest", "bottom", "fastest", "slowest", "most"}
SELLING_WORDS = {"selling", "seller", "sellers", "sold", "moving", "popular"}
#: verbs of selling and buying: they say the measure is sales, which the question usually
#: names anyway, so they are understood words rather than "ignored" ones
SALES_VERBS = {"sell", "sells", "sold", "selling", "buy", "buys", "bought", "purchase", "purchased",
               "earn", "earned", "brought", "bring", "handle", "handled", "ordered", "spent", "placed"}
#: verbs that state a price ("products that cost more than 20")
PRICE_VERBS = {"cost", "costs", "costing", "priced", "sells", "sell", "retails", "retail"}
#: words expanded before matching: superlatives that carry their measure
EXPANSIONS = {"cheapest": ("least", "expensive"), "priciest": ("most", "expensive"),
              "costliest": ("most", "expensive"), "bestselling": ("best", "selling")}

#: Markers that introduce a breakdown dimension.
BREAKDOWN_MARKERS: tuple[tuple[str, ...], ...] = (
    ("broken", "down", "by"), ("break", "down", "by"), ("grouped", "by"), ("group", "by"),
    ("split", "by"), ("for", "each"), ("for", "every"), ("by",), ("per",), ("each",),
    ("across",), ("every",),
)

#: Time grains: word -> grain.
GRAIN_ADJECTIVES = {
    "daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter",
    "yearly": "year", "annual": "year", "annually": "year",
}
GRAIN_NOUNS = {
    "day": "day", "days": "day", "date": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "quarter": "quarter", "quarters": "quarter",
    "year": "year", "years": "year",
}
TREND_WORDS = {"trend", "trends", "trending", "timeline", "evolution", "overtime"}  # + "over time"

#: Numeric comparisons; each phrase maps to an operator (longest match first).
COMPARATORS: dict[tuple[str, ...], str] = {
    ("more", "than"): ">", ("greater", "than"): ">", ("higher", "than"): ">",
    ("larger", "than"): ">", ("bigger", "than"): ">", ("over",): ">", ("above",): ">",
    ("exceeding",): ">", ("exceeds",): ">", ("exceed",): ">", (">",): ">",
    ("less", "than"): "<", ("fewer", "than"): "<", ("lower", "than"): "<",
    ("smaller", "than"): "<", ("under",): "<", ("below",): "<", ("<",): "<",
    ("at", "least"): ">=", ("no", "less", "than"): ">=", ("no", "fewer", "than"): ">=",
    ("minimum", "of"): ">=", (">=",): ">=", ("or", "more"): ">=",
    ("at", "most"): "<=", ("no", "more", "than"): "<=", ("maximum", "of"): "<=",
    ("up", "to"): "<=", ("<=",): "<=", ("or", "less"): "<=", ("or", "fewer"): "<=",
    ("equal", "to"): "=", ("equals",): "=", ("exactly",): "=", ("=",): "=",
}

#: Words that negate the value after them ("revenue excluding cancelled orders").
NEGATIONS = {"excluding", "exclude", "excludes", "except", "without", "not", "non", "ignoring", "minus"}
NEGATION_PHRASES = {("other", "than"), ("apart", "from"), ("but", "not"), ("leaving", "out"),
                    ("aside", "from"), ("except", "for")}

#: Words that ask for rows rather than an aggregate.
LIST_WORDS = {"list", "show", "display", "find", "get", "give", "which", "what", "who", "all",
              "details", "records", "rows"}
SHARE_WORDS = {"share", "percentage", "percent", "proportion", "breakdown", "%", "mix",
               "distribution", "contribution", "split"}
VERSUS_WORDS = {"vs", "versus", "against", "compared", "compare", "comparison"}
CORRELATION_WORDS = {"correlation", "correlate", "correlated", "relationship", "scatter"}

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "fifty": 50, "hundred": 100, "a": 1, "an": 1,
}

#: Verbs that ask to change data; a question (or a ``;``-separated clause) starting with one is
#: refused with a clear message rather than read as a listing ("delete all customers").
WRITE_VERBS = {"delete", "drop", "truncate", "insert", "update", "alter", "grant", "revoke", "attach",
               "detach", "vacuum", "pragma", "copy", "merge", "upsert", "erase", "wipe", "destroy",
               "exec", "execute", "call", "kill", "shutdown"}
#: Verbs that change data only when a database object follows ("create table", not "create a chart")
WRITE_VERBS_WITH_OBJECT = {"create", "replace", "remove", "set", "rename", "add", "load", "install"}
DATABASE_OBJECTS = {"table", "tables", "database", "databases", "index", "view", "views", "column",
                    "columns", "schema", "row", "rows", "record", "records", "user", "users", "trigger",
                    "extension", "secret", "or", "into", "from"}

#: Words carrying no meaning for the query; never reported as "not understood".
STOPWORDS = {
    "a", "an", "the", "of", "for", "in", "on", "at", "to", "from", "with", "and", "or", "is",
    "are", "was", "were", "be", "been", "what", "whats", "which", "who", "show", "me", "give",
    "tell", "list", "display", "find", "get", "please", "how", "do", "does", "did", "we",
    "our", "my", "i", "us", "all", "there", "that", "have", "has", "had", "it", "its", "this",
    "these", "those", "much", "many", "by", "per", "each", "every", "as", "than", "into",
    "across", "where", "whose", "their", "them", "they", "can", "could", "would", "you",
    "see", "want", "like", "need", "made", "make", "generated", "value", "values", "figure",
    "figures", "numbers", "data", "report", "chart", "graph", "plot", "table", "breakdown",
    "overview", "summary", "view", "let", "know", "look", "up", "any", "some", "so", "far",
    "during", "within", "between", "since", "until", "till", "over", "time", "about", "only",
    "just", "also", "then", "when", "while", "being", "got", "say", "get", "them", "if",
    "vs", "versus", "against", "compared", "compare", "comparison", "sorted", "ordered",
    "rank", "ranked", "ranking", "descending", "ascending", "did", "done", "come",
    "came", "belong", "belonging", "located", "based", "living", "placed", "having", "not",
    "named", "called", "containing", "contains", "like", "matching", "titled",
}



# -- measure concepts -------------------------------------------------------------------------
# A concept is a word a person uses for a measure ("sales") and the column-name words that
# carry it. They let "sales" find ``revenue``, and let the model derive revenue from
# quantity * unit price when a schema stores no revenue column.

#: concept -> user words that name it
CONCEPT_WORDS: dict[str, tuple[str, ...]] = {
    "revenue": ("revenue", "revenues", "sales", "sale", "turnover", "income", "gmv",
                "takings", "money"),
    "cost": ("cost", "costs", "cogs", "expense", "expenses", "spend", "spending"),
    "profit": ("profit", "profits", "earnings", "gross profit"),
    "margin": ("margin", "profit margin", "margins"),
    "quantity": ("quantity", "quantities", "units", "volume", "items", "qty"),
    "price": ("price", "prices", "unit price", "expensive", "pricey", "cheap"),
    "amount": ("amount", "amounts"),
}

#: column-name words that identify a concept (matched against a column's human words)
CONCEPT_COLUMN_WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "revenue": (("revenue",), ("sales",), ("sales", "amount"), ("total", "sales"),
                ("net", "sales"), ("turnover",), ("gross", "revenue"), ("net", "revenue"),
                ("line", "total"), ("total", "amount"), ("sale", "amount"), ("gmv",)),
    "cost": (("cost",), ("total", "cost"), ("cogs",), ("cost", "amount"), ("expense",),
             ("expenses",)),
    "quantity": (("quantity",), ("units", "sold"), ("units", "ordered"), ("quantity", "sold"),
                 ("quantity", "ordered"), ("qty",)),
    "price": (("unit", "price"), ("price",), ("sale", "price"), ("list", "price")),
    "discount": (("discount",), ("discount", "rate"), ("discount", "percent")),
    "amount": (("amount",), ("value",), ("total",)),
}

#: column-name words of non-additive numbers, averaged by default instead of summed
NON_ADDITIVE_WORDS = {"price", "rate", "ratio", "percent", "percentage", "discount", "score",
                      "rating", "age", "margin", "unit", "average", "latitude", "longitude", "lat",
                      "lon", "lng", "temperature", "probability", "weight", "level", "rank",
                      "year", "month", "day", "week", "number", "zip", "phone"}

#: column-name words of money amounts (for chart number formatting)
MONEY_WORDS = {"revenue", "sales", "cost", "price", "amount", "profit", "budget", "actual",
               "spend", "expense", "income", "freight", "balance", "payment", "fee", "total",
               "salary", "margin", "value", "gmv", "turnover", "cash", "charge", "tax"}

#: words naming columns that are never useful dimensions or value-index entries
UNINDEXED_WORDS = {"phone", "fax", "address", "postal", "zip", "email", "url", "homepage",
                   "home", "notes", "note", "photo", "path", "password", "hash", "token",
                   "description", "comment", "comments", "image", "picture", "uuid", "guid"}

#: words naming the preferred label column of an entity table, best first
LABEL_WORDS = (("title",), ("label",))
#: first words of ``<x>_name`` columns that name the row itself, best first
LABEL_NAME_PREFIXES = ("company", "full", "display", "legal", "business", "trade", "brand",
                       "account", "store", "user", "short", "last", "first", "contact")

#: tables that usually own the geography of a sale (customer region beats supplier region)
PREFERRED_OWNERS = {"customer", "client", "account", "buyer", "store", "shop"}

#: words implying a date column that is stored as text
DATE_NAME_WORDS = {"date", "time", "timestamp", "datetime"}
DATE_NAME_SUFFIXES = ("_at", "_on")
DATE_PENALTY_WORDS = {"birth", "required", "expiry", "expires", "due", "modified", "updated",
                      "deleted"}


#: Superlative adjectives that name the column they rank by: adjective -> (words one of which
#: the column's name holds, direction); "@date" means the row's own date column. The first
#: matching column of the row's table wins; "birth" ranks the other way round from "age".
EXTREME_ADJECTIVES: dict[str, tuple[tuple[str, ...], str]] = {
    "youngest": (("age", "birth"), "asc"), "oldest": (("age", "birth"), "desc"),
    "heaviest": (("weight",), "desc"), "lightest": (("weight",), "asc"),
    "tallest": (("height",), "desc"), "shortest": (("height", "length", "duration"), "asc"),
    "longest": (("length", "duration", "runtime"), "desc"),
    "newest": (("@date",), "desc"), "most recent": (("@date",), "desc"), "most recently": (("@date",), "desc"),
    "least recent": (("@date",), "asc"), "least recently": (("@date",), "asc"),
    "richest": (("earnings", "wealth", "income", "worth", "salary"), "desc"),
    "poorest": (("earnings", "wealth", "income", "worth", "salary"), "asc"),
    "highest rated": (("rating", "rated", "score"), "desc"), "most highly rated": (("rating", "rated", "score"), "desc"),
    "lowest rated": (("rating", "rated", "score"), "asc"), "best rated": (("rating", "rated", "score"), "desc"),
    "top rated": (("rating", "rated", "score"), "desc"),
}


#: Comparative adjectives that compare a column against a number ("heavier than 10",
#: "older than 30"), added to COMPARATORS; the column itself is named or implied by the
#: subject ("pets older than 1": their age).
COMPARATIVE_ADJECTIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "heavier": (">", ("weight",)), "lighter": ("<", ("weight",)), "older": (">", ("age",)),
    "younger": ("<", ("age",)), "taller": (">", ("height",)), "shorter": ("<", ("height", "length")),
    "longer": (">", ("length", "duration")), "later": (">", ("@date",)), "earlier": ("<", ("@date",)),
    "cheaper": ("<", ("price", "cost")), "costlier": (">", ("price", "cost")),
}
COMPARATORS.update({(word, "than"): op for word, (op, _) in COMPARATIVE_ADJECTIVES.items()})


#: Words the structure of a question uses (existence, frequency, ordering), so the spelling
#: corrector never "fixes" them into schema words.
STRUCTURE_WORDS = {
    "no", "never", "none", "not", "without", "dont", "doesnt", "didnt", "havent", "hasnt", "hadnt", "isnt",
    "arent", "wasnt", "werent", "cannot", "cant", "wont", "any", "some", "ever", "across", "among", "amongst",
    "common", "commonly", "frequent", "frequently", "popular", "often", "usual", "either", "single",
    "sort", "order", "arrange", "rank", "reverse", "reversed",
}

#: negated comparators ("membership level not higher than 4")
COMPARATORS.update({("not",) + phrase: {">": "<=", ">=": "<", "<": ">=", "<=": ">"}[op]
                    for phrase, op in list(COMPARATORS.items())
                    if op in {">", ">=", "<", "<="} and phrase[0] not in {"not", "no", "or", "at"} and phrase[0].isalpha()})

# -- schema and value linking (issue 10) ------------------------------------------------------
# Names found in schemas nobody wrote for this parser: abbreviations that expand to several
# words, participle columns named after their agent, unit suffixes, role-named keys, and the
# phrases of string conditions ("starts with", "has X in their name").

#: abbreviations that expand to several words (``fname`` -> "first name"), and one-letter
#: initials before "name" (``LName`` splits to "l name": the last name)
ABBREVIATION_PHRASES: dict[str, tuple[str, ...]] = {
    "fname": ("first", "name"), "lname": ("last", "name"), "mname": ("middle", "name"),
    "firstname": ("first", "name"), "lastname": ("last", "name"), "surname": ("last", "name"),
    "dob": ("date", "of", "birth"), "stu": ("student",), "descr": ("description",),
    "qnty": ("quantity",), "prc": ("price",), "tel": ("phone",), "yob": ("year", "of", "birth"),
}
NAME_INITIALS = {"f": "first", "l": "last", "m": "middle"}

#: irregular agent nouns of participle columns (``written_by`` is the "writer")
AGENT_NOUNS = {"written": "writer", "sold": "seller", "made": "maker", "built": "builder",
               "taught": "teacher", "drawn": "drawer", "sung": "singer", "bought": "buyer",
               "held": "holder", "run": "runner", "led": "leader", "won": "winner",
               "given": "giver", "driven": "driver", "shot": "shooter", "hosted": "host"}

#: unit words in column names (``weight_kg``, ``length_ms``) -> what the column measures, so
#: "weight", "length" or "duration" name it; the unit itself is dropped from the alias
UNIT_MEANINGS: dict[str, tuple[str, ...]] = {
    "kg": ("weight",), "kgs": ("weight",), "lb": ("weight",), "lbs": ("weight",),
    "grams": ("weight",), "gram": ("weight",), "g": (), "km": ("distance",), "mi": ("distance",),
    "miles": ("distance",), "cm": ("length",), "mm": ("length",), "m": (), "ft": ("length",),
    "milliseconds": ("length", "duration"), "ms": ("length", "duration"),
    "seconds": ("length", "duration"), "secs": ("duration",), "sec": ("duration",),
    "minutes": ("length", "duration"), "mins": ("duration",), "min": (),
    "hours": ("duration",), "hrs": ("duration",), "bytes": ("size",), "kb": ("size",),
    "mb": ("size",), "gb": ("size",), "usd": (), "eur": (), "gbp": (), "pct": (), "percent": (),
}
#: what people call a numeric column by its meaning ("how old" -> age; "tall" -> height)
MEASURE_MEANINGS: dict[str, tuple[str, ...]] = {
    "age": ("old",), "height": ("tall",), "weight": ("heavy",), "length": ("long",),
    "duration": ("long",), "milliseconds": ("duration",), "seconds": ("duration",),
}

#: genders stored as codes: what a question says -> the stored value's first letter
GENDER_WORDS = {"female": "f", "females": "f", "woman": "f", "women": "f", "girl": "f", "girls": "f",
                "male": "m", "males": "m", "man": "m", "men": "m", "boy": "m", "boys": "m"}
GENDER_COLUMNS = {"sex", "gender"}

#: last words of role-named keys (``ShipVia``, ``handled_by``) that point at another table
ROLE_KEY_WORDS = {"via", "by"}

#: string conditions: verb -> where the text must be in the value
STRING_VERBS: dict[tuple[str, ...], str] = {
    ("starts", "with"): "prefix", ("start", "with"): "prefix", ("starting", "with"): "prefix",
    ("begins", "with"): "prefix", ("begin", "with"): "prefix", ("beginning", "with"): "prefix",
    ("started", "with"): "prefix", ("ends", "with"): "suffix", ("end", "with"): "suffix",
    ("ending", "with"): "suffix", ("ended", "with"): "suffix",
    ("contains",): "contains", ("contain",): "contains", ("containing",): "contains",
    ("includes",): "contains", ("include",): "contains", ("including",): "contains",
    ("has",): "contains", ("have",): "contains", ("having",): "contains", ("with",): "contains",
    ("like",): "contains", ("matching",): "contains", ("matches",): "contains",
}
#: verbs that only mean "contains" when the kind of text follows ("the letter w") or the
#: column is named ("whose name has ...", "with X in their name")
WEAK_STRING_VERBS = {"has", "have", "having", "with", "include", "includes", "including",
                     "contain", "contains", "containing"}
#: "the letter w", "the word computer", "the substring 'ab'"
STRING_KIND_WORDS = {"letter", "letters", "word", "words", "string", "substring", "text",
                     "character", "characters", "phrase", "term", "prefix", "suffix"}
#: "named X", "called X", "titled X": X is the row's name
NAMING_VERBS = {"named", "called", "titled", "entitled"}
POSSESSIVES = {"its", "their", "his", "her", "the", "a"}

#: other words for the last word of a table name ("stores" of a ``shop`` table); both ways
TABLE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "shop": ("store",), "store": ("shop",), "film": ("movie",), "movie": ("film",),
    "vendor": ("supplier",), "supplier": ("vendor",),
    "instructor": ("teacher",), "teacher": ("instructor",), "automobile": ("car",), "car": ("automobile",),
    "song": ("track",), "track": ("song",), "staff": ("employee",), "worker": ("employee",),
}

#: the values of a text column that is really a yes/no flag ("hight_definition_TV": 'yes'/'no')
YES_VALUES = {"yes", "y", "true", "t"}
NO_VALUES = {"no", "n", "false", "f"}

#: key columns that point at another row of a people table ("ReportsTo", "manager_id", "parent_id")
SELF_KEY_ROLES = {("reports", "to"), ("reports",), ("report", "to"), ("parent",), ("superior",),
                  ("manager",), ("supervisor",), ("boss",), ("mentor",)}
#: singular last words of tables whose rows are people (a "manager_id" elsewhere points at them)
PEOPLE_TABLE_WORDS = {"employee", "staff", "person", "people", "user", "member", "worker", "agent"}

#: first words of table names that say what kind of table it is, not what it holds
#: (``Ref_Template_Types`` holds template types, ``dim_customer`` customers)
TABLE_KIND_PREFIXES = {"ref", "lkp", "lookup", "dim", "tbl", "fact", "lu", "xref", "map"}

#: other words for a word of a column name ("zip code" for ``zip_postcode``, "mobile" for ``cell``)
COLUMN_WORD_SYNONYMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "postcode": (("zip", "code"), ("postal", "code"), ("zip",)), "zip": (("zip", "code"), ("postcode",)),
    "postal": (("zip",),), "cell": (("mobile",), ("phone",)), "mobile": (("cell",), ("phone",)),
    "surname": (("last", "name"),), "forename": (("first", "name"),),
    "dob": (("birthday",),), "telephone": (("phone",),), "phone": (("telephone",),),
    "nationality": (("citizenship",),), "occupation": (("job",),), "salary": (("pay",), ("wage",)),
}
#: endings of a question word whose stem is a stored value ("engineering" department -> 'engineer')
VALUE_WORD_ENDINGS = ("ing", "ed", "al")

#: words asking for the change against the previous period ("revenue growth by year")
GROWTH_WORDS = {"growth", "grow", "grew", "grown", "growing"}

#: verbs ranked by "best"/"worst" after them ("which products sell best", "performed worst")
RANKING_VERBS = {"sell", "sells", "sold", "selling", "perform", "performs", "performed", "performing"}
