"""Natural-language questions -> SQL, offline and schema-aware, with an optional LLM.

Public API: :class:`NLPAgent` (builds and caches a :class:`SemanticModel` per warehouse and
answers questions with the offline parser or an LLM), :class:`ParsedQuestion` (its answer),
:class:`NotUnderstood` (raised when no sensible query exists, with suggestions),
:class:`LLMEngine` (an OpenAI-compatible chat-completions endpoint) and the semantic layer
(:func:`load_semantic_layer`, :class:`SemanticLayer`, :class:`SemanticLayerError`).
"""

from .agent import NLPAgent
from .llm import LLMEngine
from .model import SemanticModel
from .parser import NotUnderstood, ParsedQuestion
from .semantic_layer import SemanticLayer, SemanticLayerError, load_semantic_layer

__all__ = [
    "LLMEngine", "NLPAgent", "NotUnderstood", "ParsedQuestion", "SemanticLayer", "SemanticLayerError",
    "SemanticModel", "load_semantic_layer",
]
