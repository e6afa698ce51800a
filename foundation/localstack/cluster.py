"""`churnstream stack up --cluster`: the cluster topology on one machine, from the same binaries
as the single-node stack, one process per node.

- Kafka: 3 nodes in KRaft mode (each a broker and a controller: the quorum survives one lost). The
  project's topics get 3 replicas with min.insync.replicas 2 (foundation/topics.py), and every
  producer waits for those (acks=all): an acknowledged record survives the loss of any one broker.
- Elasticsearch: 2 data nodes and a small master-only node. Indices get 1 replica, so either data
  node holds all of them. The third node is a tiebreaker: Elasticsearch needs a majority of its
  master-eligible nodes to elect a master, and of two, the loss of either would stop the cluster.
- Flink: a session cluster, one JobManager and 2 TaskManagers of 4 slots each. The job runs at
  parallelism 4, spread 2 + 2 (taskmanager.load-balance.mode: slots). When one TaskManager is lost,
  the job restarts from its last checkpoint on the other one's 4 slots, without waiting for a
  replacement.
- The Schema Registry, one process, as on the single-node stack.

The job and the indexers are clients of it: `churnstream job` (CHURNSTREAM_FLINK_JOBMANAGER,
CHURNSTREAM_PARALLELISM=4) and two `churnstream index` in one consumer group; `cluster_settings()`
gives the settings that point them at it, and `churnstream stack up --cluster` prints them.

Ports: the brokers listen on the Kafka port and the two after each other's controller port
(9092, 9094, 9096; controllers 9093, 9095, 9097), the Elasticsearch nodes on the ES port and the
next two (9200-9202; transport 9300-9302), Flink's REST API on 8081. ``ClusterPorts`` takes others.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from foundation.localstack import process
from foundation.localstack.elasticsearch import ElasticsearchServer, EsNode
from foundation.localstack.flink_cluster import FlinkSessionCluster
from foundation.localstack.kafka import KafkaNode, KafkaServer, new_cluster_id
from foundation.localstack.schema_registry import SchemaRegistryServer, url as registry_url
from foundation.settings import Settings

log = logging.getLogger("churnstream.stack")

BROKERS, ES_DATA_NODES, TASKMANAGERS, SLOTS_PER_TASKMANAGER = 3, 2, 2, 4
PARALLELISM = 4
TIEBREAKER = "es-tiebreaker"


@dataclass(frozen=True)
class ClusterPorts:
    kafka: tuple[int, ...]
    controllers: tuple[int, ...]
    es_http: tuple[int, ...]        # the data nodes', then the tiebreaker's
    es_transport: tuple[int, ...]
    flink_rest: int
    flink_rpc: int
    registry: int

    @classmethod
    def of(cls, settings: Settings) -> "ClusterPorts":
        k, e = settings.kafka_port, settings.es_port
        return cls(kafka=tuple(k + 2 * i for i in range(BROKERS)),
                   controllers=tuple(k + 2 * i + 1 for i in range(BROKERS)),
                   es_http=tuple(e + i for i in range(ES_DATA_NODES + 1)),
                   es_transport=tuple(e + 100 + i for i in range(ES_DATA_NODES + 1)),
                   flink_rest=8081, flink_rpc=6123, registry=settings.registry_port)

    @classmethod
    def from_list(cls, ports: list[int]) -> "ClusterPorts":
        """Ports taken in order from a list of 2*3 + 2*3 + 3 = 15 free ones (tests)."""
        it = iter(ports)
        take = lambda n: tuple(next(it) for _ in range(n))  # noqa: E731
        return cls(take(BROKERS), take(BROKERS), take(ES_DATA_NODES + 1), take(ES_DATA_NODES + 1),
                   next(it), next(it), next(it))


class ClusterTopology:
    """The nodes of the cluster topology in ``settings.run_dir``/cluster (their own data and logs)."""

    def __init__(self, settings: Settings, ports: ClusterPorts | None = None, kafka_heap: str = "512m",
                 es_heap: str = "512m", flink_properties: dict[str, str] | None = None, flink_jvm_args: str = ""):
        self.ports = ports or ClusterPorts.of(settings)
        self.run = Path(settings.run_dir) / "cluster"
        base = settings.with_(run_dir=str(self.run), kafka_heap=kafka_heap, es_heap=es_heap,
                              registry_port=self.ports.registry)
        self.base = base
        state = self.run / "topology.json"
        cluster_id = json.loads(state.read_text())["kafka_cluster_id"] if state.exists() else new_cluster_id()
        self.kafka_cluster_id = cluster_id
        voters = {i + 1: c for i, c in enumerate(self.ports.controllers)}
        self.brokers = [KafkaServer(base.with_(kafka_port=p, kafka_controller_port=c),
                                    node=KafkaNode(i + 1, voters, cluster_id, BROKERS))
                        for i, (p, c) in enumerate(zip(self.ports.kafka, self.ports.controllers))]
        names = [f"es-{i + 1}" for i in range(ES_DATA_NODES)] + [TIEBREAKER]
        masters = dict(zip(names, self.ports.es_transport))
        self.es_nodes = [ElasticsearchServer(base.with_(es_port=h, es_heap="256m" if n == TIEBREAKER else es_heap),
                                             node=EsNode(n, t, masters, ("master",) if n == TIEBREAKER else None))
                         for n, h, t in zip(names, self.ports.es_http, self.ports.es_transport)]
        props = {"jobmanager.memory.process.size": "960m", "taskmanager.memory.process.size": "1600m",
                 **(flink_properties or {}),
                 "taskmanager.numberOfTaskSlots": str(SLOTS_PER_TASKMANAGER),
                 "taskmanager.load-balance.mode": "slots",
                 # A TaskManager that stops answering is given up after 10 s (Flink's default is 50 s),
                 # and the job restarts on the slots left.
                 "heartbeat.interval": "2000", "heartbeat.timeout": "10000",
                 "execution.checkpointing.savepoint-dir": (self.run / "savepoints").resolve().as_uri()}
        self.flink = FlinkSessionCluster(self.run, self.ports.flink_rest, self.ports.flink_rpc, props,
                                         flink_jvm_args, taskmanagers=TASKMANAGERS)
        self.registry = SchemaRegistryServer(base.with_(kafka_bootstrap=self.bootstrap))

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports.kafka)

    def data_nodes(self) -> list[ElasticsearchServer]:
        return self.es_nodes[:ES_DATA_NODES]

    def settings(self, settings: Settings) -> Settings:
        """``settings`` pointed at the cluster: every broker and data node, the session cluster,
        replicated topics and indices, the job at parallelism 4."""
        return settings.with_(kafka_bootstrap=self.bootstrap,
                              es_url=",".join(f"http://127.0.0.1:{p}" for p in self.ports.es_http[:ES_DATA_NODES]),
                              schema_registry_url=registry_url("127.0.0.1", self.ports.registry),
                              flink_jobmanager=self.flink.address, parallelism=PARALLELISM,
                              topic_replication=BROKERS, index_replicas=ES_DATA_NODES - 1)

    def up(self, timeout: float = 240) -> "ClusterTopology":
        """Start every node (in parallel), wait until each is ready; a running node is left as it is."""
        from foundation.artifacts import es_java_home

        t0 = time.monotonic()
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / "topology.json").write_text(json.dumps({"kafka_cluster_id": self.kafka_cluster_id,
                                                            "ports": asdict(self.ports)}, indent=1) + "\n")
        es_java_home(self.base)
        starting = [n for n in (*self.brokers, *self.es_nodes) if n.pid() is None]
        for node in starting:
            process.check_port_free(node.s.kafka_port if isinstance(node, KafkaServer) else node.s.es_port,
                                    node.name, "CHURNSTREAM_KAFKA_PORT or CHURNSTREAM_ES_PORT")
        for node in starting:
            node.launch()
        if self.flink.pid() is None:
            self.flink.launch()
        for node in starting:
            process.wait_until(node.ready, timeout, node.name, node.log_file, node.pid())
            log.info("%s: ready", node.name)
        if self.registry.pid() is None:
            self.registry.launch()
            process.wait_until(self.registry.ready, timeout, "the Schema Registry", self.registry.log_file,
                               self.registry.pid())
        first = self.flink.taskmanagers[0]
        process.wait_until(self.flink.ready, timeout, "the Flink session cluster",
                           self.flink.base / "log" / f"{first}.out", self.flink.pid(first))
        log.info("cluster: up in %.1f s: Kafka %s, Elasticsearch %s, Flink %s (%d TaskManagers x %d slots)",
                 time.monotonic() - t0, self.bootstrap, ", ".join(str(p) for p in self.ports.es_http),
                 self.flink.address, TASKMANAGERS, SLOTS_PER_TASKMANAGER)
        return self

    def status(self) -> list[dict]:
        rows = []
        for node in (*self.brokers, *self.es_nodes, self.registry):
            pid = node.pid()
            rows.append({"service": node.name, "pid": pid, "running": pid is not None,
                         "ready": bool(pid) and node.ready(), "log": str(node.log_file)})
        for role in self.flink.roles:
            pid = self.flink.pid(role)
            rows.append({"service": f"flink-{role}", "pid": pid, "running": pid is not None,
                         "ready": bool(pid) and self.flink.ready(), "log": str(self.flink.base / "log" / f"{role}.out")})
        return rows

    def down(self) -> list[str]:
        """Stop every node, all at once (each stop waits for its process to end)."""
        from concurrent.futures import ThreadPoolExecutor

        stopped = []
        if any(self.flink.pid(r) for r in self.flink.roles):
            self.flink.down()
            stopped.append("flink")
        nodes = (self.registry, *self.es_nodes, *self.brokers)
        with ThreadPoolExecutor(len(nodes)) as pool:
            for node, done in zip(nodes, pool.map(lambda n: process.stop(n.pidfile), nodes)):
                if done:
                    log.info("%s: stopped", node.name)
                    stopped.append(node.name)
        return stopped

    def running(self) -> bool:
        return (self.run / "topology.json").exists() and any(r["running"] for r in self.status())
