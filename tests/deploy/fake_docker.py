#!/usr/bin/env python3
"""A stand-in ``docker`` for the deploy script tests: records every call and plays the few
answers the scripts read back. Installed on PATH as ``docker`` by the tests.

Environment:
  FAKE_DOCKER_DIR       state dir: ``calls.log`` (one line per call: "TAG=<KALEEM_TAG> <args>"),
                        ``running/<service>`` (the tag each recreated service runs)
  FAKE_DOCKER_BAD_TAG   a service running this tag fails its readiness probe
  FAKE_DOCKER_FAIL_ON   any call whose arguments contain this string exits 1
"""

import os
import sys
from pathlib import Path

state = Path(os.environ["FAKE_DOCKER_DIR"])
args = sys.argv[1:]
if args[:1] == ["compose"] and args[1:2] == ["-f"]:
    args = ["compose", *args[3:]]  # the compose file path is noise in the call log
line = " ".join(" ".join(a.replace("\\\n", " ").split()) for a in args)
with (state / "calls.log").open("a") as log:
    log.write(f"TAG={os.environ.get('KALEEM_TAG', '')} {line}\n")

fail_on = os.environ.get("FAKE_DOCKER_FAIL_ON")
if fail_on and fail_on in line:
    sys.exit(1)

running = state / "running"
running.mkdir(exist_ok=True)
sub = args[1] if len(args) > 1 else ""

if sub == "up" and "--force-recreate" in args:
    (running / args[-1]).write_text(os.environ.get("KALEEM_TAG", ""))
elif sub == "exec":
    service = args[3]
    if "/readyz" in line:
        tag = (running / service).read_text() if (running / service).exists() else ""
        sys.exit(1 if tag and tag == os.environ.get("FAKE_DOCKER_BAD_TAG") else 0)
    if "mongodump" in line:
        sys.stdout.write("FAKE-MONGO-ARCHIVE")
    elif "mongorestore" in line:
        (state / "mongorestore.stdin").write_bytes(sys.stdin.buffer.read())
    elif "LASTSAVE" in line:
        counter = state / "lastsave"
        n = int(counter.read_text()) if counter.exists() else 1000
        counter.write_text(str(n + 1))
        print(n // 2)  # moves on every second call: the script must poll
elif sub == "run" and "python" in args:
    script = sys.stdin.read()
    assert "def main" in script, "the qdrant helper arrives on stdin"
    if args[-1] == "snapshot":
        print("products\tproducts-2026.snapshot\nknowledge\tknowledge-2026.snapshot")
elif sub == "cp":
    src, dst = args[2], args[3]
    if ":/" in src and not Path(src).exists():  # container → host
        Path(dst).write_text(f"FAKE {src}")
sys.exit(0)
