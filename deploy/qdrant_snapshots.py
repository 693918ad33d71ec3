"""Qdrant snapshot helper for backup.sh / restore.sh, run inside the compose network as
``python - COMMAND ...`` with this file on stdin (stdlib only: the image needs nothing extra).

  snapshot              snapshot every collection; prints "<collection>\\t<snapshot name>"
  delete COLL NAME      delete a snapshot once it has been copied out
  recover COLL FILE     recover COLL from a snapshot file under /qdrant/snapshots
"""

import json
import os
import sys
import urllib.parse
import urllib.request
from typing import Any

BASE = os.environ.get("QDRANT_URL", "http://qdrant:6333").rstrip("/")
TIMEOUT_S = 600  # a large collection takes minutes to snapshot


def call(method: str, path: str, body: object = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        result: dict[str, Any] = json.loads(resp.read() or b"{}")
        return result


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "snapshot":
        for coll in call("GET", "/collections")["result"]["collections"]:
            name = coll["name"]
            q = urllib.parse.quote(name)
            snap = call("POST", f"/collections/{q}/snapshots?wait=true")["result"]["name"]
            print(f"{name}\t{snap}", flush=True)
        return 0
    if command == "delete" and len(argv) == 3:
        q, s = urllib.parse.quote(argv[1]), urllib.parse.quote(argv[2])
        call("DELETE", f"/collections/{q}/snapshots/{s}?wait=true")
        return 0
    if command == "recover" and len(argv) == 3:
        q = urllib.parse.quote(argv[1])
        body = {"location": f"file://{argv[2]}", "priority": "snapshot"}
        call("PUT", f"/collections/{q}/snapshots/recover?wait=true", body)
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
