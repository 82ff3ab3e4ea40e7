"""benchmarks/realtime.py --quick keeps working: every server it compares starts, takes its
clients, fans out without losing a delivery, and the JSON has every figure of the table.

No figure is asserted (timing belongs to the benchmark's printout), only that they exist.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_the_whole_table(tmp_path: Path) -> None:
    out = tmp_path / "rt.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "realtime.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert "raw" in results["servers"] and "livebi" in results["servers"]  # never skipped: core dependencies
    for kind, r in results["servers"].items():
        assert "error" not in r, (kind, r)
        assert r["idle"]["complete"] and r["idle"]["rss_kib_per_conn"] > 0
        assert r["burst"]["n"] == 100
        for fanout in r["fanout"].values():
            assert fanout["lost"] == 0 and fanout["received"] == fanout["expected"] > 0
            assert fanout["server_us_per_delivery"] > 0 and fanout["p99_ms"] >= fanout["p50_ms"] > 0
    assert "ratios against raw websockets" in proc.stdout
    # The summary against the targets is computed (its verdicts are figures, not asserted).
    targets = results["summary"]["targets"]
    assert {"RSS KiB per idle connection", "burst 100 x raw", "fanout 200 p99 x raw"} <= set(targets)
    assert "livebi against the targets of issue 11" in proc.stdout
