"""Where the engine's actors run when the Ray cluster has more than one node.

Two kinds of actor, two rules:

* **Node-local state stays on the engine's node.** The embedded vector store (qdrant-edge) is
  files in this data dir, so its owner actor is pinned, hard, to the node of the process that
  created it (``kaleem serve``: the head in a one-machine cluster). A soft pin would let Ray
  restart it on a node where those files do not exist and serve an empty catalog.
* **Stateless workers spread.** Conversation hosts and delivery actors keep nothing that is
  not in Redis (inbox, checkpoints, outbox, sent markers) and the record store, and restart
  with the same consumer name, so any node may run them and a lost node only costs a restart
  elsewhere. ``SPREAD`` places them over every node that can take them, when they start and
  again when Ray restarts them after a node is lost.

"Can take them": each reserves :data:`SPREAD_CPU` of a CPU, so nodes that joined with
``--num-cpus=0`` (the gateways' and the engine's own driver nodes in Compose, the KubeRay
head) are never chosen: a gateway rolling out must not take conversations down with it. The
share is tiny so a two-core machine still hosts a hundred of them beside the embedder.

Embedded stores (no ``MONGO_URL``/``QDRANT_URL``/``REDIS_URL``) are reached by path: the SQLite
file, Redis' unix socket, the vector store's files. Every node must then be on this machine
(several raylets, as the scale-out test runs them); a host on another machine would open an
empty SQLite file of its own there. :func:`other_machines` is what the engine checks at start.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

SPREAD_CPU = 0.01


def on_this_node() -> dict[str, Any]:
    """Actor options pinning an actor to the calling process' node for its whole life."""
    node_id = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)}


def other_machines() -> list[str]:
    """Addresses of live nodes on machines other than the calling process' node."""
    here = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    return sorted(
        {
            str(n["NodeManagerAddress"])
            for n in ray.nodes()  # type: ignore[no-untyped-call]
            if n.get("Alive") and n["NodeManagerAddress"] != here
        }
    )


def spread() -> dict[str, Any]:
    """Actor options spreading stateless workers over the nodes that have CPUs."""
    return {"scheduling_strategy": "SPREAD", "num_cpus": SPREAD_CPU}
