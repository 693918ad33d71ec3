"""A multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``), in its own process.

Its own process because ``Cluster`` changes process-wide Ray state (the current-cluster
address file, the internal KV client it resets on shutdown): in the test process that would
break the suite's in-process engine that other tests share. It also gets a Ray temp dir of its
own (``RAY_TMPDIR``): Ray writes the "current cluster" address there, and any ``ray.init()``
without an address on this machine (another engine, another checkout's tests) would join a
cluster whose address it found in the shared ``/tmp/ray``. The test drives it over a line
protocol on stdin/stdout; every answer is one line ``KALEEM-CLUSTER <json>`` (anything else on
stdout is Ray talking and is skipped). The cluster ends with its stdin, so it never outlives
the test.

Commands: ``actors`` (the cluster's named actors: name -> node id, state, restarts),
``remove <node id>`` (kill a worker node's raylet and every process on it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

PREFIX = "KALEEM-CLUSTER "


class ClusterProcess:
    """The test's side: start a head and worker nodes, then ask and command.

    ``workers``: one dict of ``Cluster.add_node`` arguments per worker node, e.g.
    ``{"num_cpus": 1}``; ``{"num_cpus": 1, "node_ip_address": "127.0.0.2"}`` is a node the
    cluster sees on another machine. ``self.workers`` holds their node ids in that order.
    """

    def __init__(self, head_cpus: int, workers: list[dict[str, Any]]) -> None:
        spec = json.dumps({"head_cpus": head_cpus, "workers": workers})
        # Short: Ray's unix sockets live under it (a socket path has at most 107 bytes).
        self.tmpdir = tempfile.mkdtemp(prefix="kmn-", dir="/tmp")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.ray_cluster", spec],
            env=os.environ | {"RAY_TMPDIR": self.tmpdir},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started = self._answer()
        self.address: str = started["address"]
        self.head: str = started["head"]
        self.workers: list[str] = list(started["workers"])

    def _answer(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(PREFIX):
                answer: dict[str, Any] = json.loads(line[len(PREFIX) :])
                if "error" in answer:
                    raise AssertionError(f"cluster process: {answer['error']}")
                return answer
        raise AssertionError(f"cluster process exited ({self._proc.wait()})")

    def _call(self, command: str) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._answer()

    def actors(self) -> dict[str, dict[str, Any]]:
        """Named actors -> {"node", "state", "restarts"}, as the cluster's GCS has them."""
        return dict(self._call("actors")["actors"])

    def remove(self, node_id: str) -> None:
        self._call(f"remove {node_id}")
        self.workers.remove(node_id)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _say(answer: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(answer) + "\n")
    sys.stdout.flush()


def main(head_cpus: int, workers: list[dict[str, Any]]) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": head_cpus, "include_dashboard": False},
    )
    head = cluster.head_node
    assert head is not None
    try:
        nodes = {}
        for args in workers:
            node = cluster.add_node(**args)
            nodes[node.node_id] = node
        cluster.wait_for_nodes()
        _say(
            {
                "address": cluster.address,
                "head": head.node_id,
                "workers": list(nodes),
            }
        )
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "actors":
                rows = cluster.global_state.actor_table(None).values()
                _say(
                    {
                        "actors": {
                            r["Name"]: {
                                "node": r["Address"]["NodeID"],
                                "state": r["State"],
                                "restarts": r["NumRestarts"],
                            }
                            for r in rows
                            if r["Name"]
                        }
                    }
                )
            elif command == "remove" and arg in nodes:
                cluster.remove_node(nodes.pop(arg))
                _say({"removed": arg})
            else:
                _say({"error": f"unknown command {line.strip()!r}"})
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    main(int(spec["head_cpus"]), list(spec["workers"]))
