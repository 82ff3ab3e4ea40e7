"""Natural-language questions -> SQL, offline and schema-aware.

Public API: :class:`NLPAgent` (builds and caches a :class:`SemanticModel` per warehouse and
parses questions), :class:`ParsedQuestion` (its answer) and :class:`NotUnderstood` (raised
when no sensible query exists, with suggestions).
"""

from .model import SemanticModel
from .parser import NLPAgent, NotUnderstood, ParsedQuestion

__all__ = ["NLPAgent", "NotUnderstood", "ParsedQuestion", "SemanticModel"]
