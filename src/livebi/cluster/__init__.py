"""What several livebi nodes share through Redis (issue 12): used connection tickets, forwarded
SSE ops; the broker (:mod:`livebi.realtime`) and the live refresh leases (:mod:`livebi.live.lease`)
use the same Redis. docs/deployment.md ("Running several nodes") says what each guarantees."""
