"""Agents as services: ``livebi agent nlp|data|viz`` serves one agent, and a livebi server
reaches it through a pool of WebSocket connections with an HTTP (NDJSON) fallback.

* :mod:`.wire`: the messages (JSON, one request id per call) and the conversions of results,
  parses and charts to and from JSON.
* :mod:`.backoff`: the reconnection schedule (exponential, with jitter) and the pure
  bookkeeping of a pool (round robin, slots, WebSocket/HTTP mode).
* :mod:`.pool`: :class:`~.pool.AgentPool`, the client side (connections, retries, fallback,
  probe back to WebSocket).
* :mod:`.service`: the agent's own server (Starlette under uvicorn).
* :mod:`.proxies`: stand-ins with the in-process agents' interface that call a pool, so the
  pipeline does not know whether an agent is local.

docs/agents.md describes the design, the wire protocol and the failure modes.
"""
