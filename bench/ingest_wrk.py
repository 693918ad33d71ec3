"""Webhook intake measured with wrk (C) as the load generator, so the 2 cores go to the gateway.

`bench/ingest.py` drives the gateway from Python on the same cores; at ~2,000/s the Python
client itself eats most of a core, which hides the gateway's real capacity. This variant
pre-signs N distinct WhatsApp webhooks into a Lua table, runs Debian's `wrk` for a bounded time
at a few connection counts against the real gateway (`create_app` + embedded Redis, on uvloop,
started by `bench/ingest.py --serve`), then checks that every distinct accepted webhook is in
the inbox exactly once (zero lost; repeats beyond N are redeliveries and must be deduplicated).

    apt-get install -y wrk
    .venv/bin/python bench/ingest_wrk.py --distinct 40000 --connections 8,16,32 --seconds 8

``--appendfsync everysec,always`` measures each AOF fsync policy of the embedded Redis in one
run (a fresh gateway and Redis per policy, the same steps), so the cost of acknowledging only
fsynced appends is read off side by side. The engine runs ``always``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import SECRET, _body, count_inbox

from connectors.meta import sign

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return round(float(m.group(1)) * _UNITS[m.group(2)], 2)


def write_requests(path: Path, distinct: int) -> None:
    """One request a line, "signature<TAB>body" (bodies are compact JSON: no tabs or newlines).

    Read line by line in Lua: one huge Lua source chunk overflows LuaJIT's per-function limits.
    """
    with path.open("w") as out:
        for i in range(distinct):
            body = _body(i)
            out.write(f"{sign(SECRET, body)}\t{body.decode()}\n")


def write_script(path: Path, requests: Path, channel_id: str) -> None:
    path.write_text(
        f"""local reqs = {{}}
for line in io.lines("{requests}") do
  local tab = string.find(line, "\\t", 1, true)
  reqs[#reqs + 1] = {{string.sub(line, tab + 1), string.sub(line, 1, tab - 1)}}
end
local i = 0
local n = #reqs
init = function(args)
  i = tonumber(args[1] or "0")  -- each step starts after the previous one: all distinct
end
request = function()
  i = i + 1
  if i > n then i = 1 end
  local r = reqs[i]
  return wrk.format("POST", "/webhooks/whatsapp/{channel_id}",
    {{["Content-Type"]="application/json", ["X-Hub-Signature-256"]=r[2]}}, r[1])
end
"""
    )


def run_wrk(
    url: str, script: Path, connections: int, seconds: float, offset: int
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            str(offset),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": connections,
        "requests": total,
        "per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(dist["50"]),
        "p99_ms": _ms(dist["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def measure(
    appendfsync: str, requests: Path, work: Path, connections: list[int], seconds: float
) -> dict[str, Any]:
    """One gateway + embedded Redis with this fsync policy, every step, then the loss check."""
    data = work / f"data-{appendfsync}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("ingest.py")),
            "--serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--uvloop",
            "--appendfsync",
            appendfsync,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert gateway.stdout is not None
        info = json.loads(gateway.stdout.readline())
        script = work / f"run-{appendfsync}.lua"
        write_script(script, requests, info["channel_id"])
        time.sleep(0.5)
        steps: list[dict[str, Any]] = []
        offset = 0
        for c in connections:
            steps.append(run_wrk(f"http://127.0.0.1:{port}", script, c, seconds, offset))
            offset += steps[-1]["requests"]
        entries, dedupe = asyncio.run(count_inbox(info["redis_url"]))
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    distinct = int(requests.read_text().count("\n"))
    distinct_sent = min(sum(s["requests"] for s in steps), distinct)
    return {
        "appendfsync": appendfsync,
        "steps": steps,
        "distinct_webhooks": distinct_sent,
        "inbox_entries": entries,
        "dedupe_keys": dedupe,
        # wrk stops counting at its deadline while the last requests are still in flight,
        # so the inbox may hold a few more than wrk reported: never fewer.
        "lost": max(0, distinct_sent - entries),
        "best_per_s_with_p99_le_50ms": max(
            (s["per_s"] for s in steps if s["p99_ms"] <= 50 and s["non_2xx"] == 0),
            default=None,
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--distinct", type=int, default=40_000)
    p.add_argument("--connections", default="8,16,32")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument(
        "--appendfsync",
        default="always",
        help="comma-separated AOF fsync policies to measure, e.g. everysec,always",
    )
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="kaleem-ingest-wrk-"))
    try:
        requests = work / "reqs.tsv"
        write_requests(requests, args.distinct)
        connections = [int(c) for c in args.connections.split(",")]
        runs = [
            measure(mode.strip(), requests, work, connections, args.seconds)
            for mode in args.appendfsync.split(",")
        ]
        print(json.dumps({"benchmark": "ingest_wrk", "runs": runs}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
