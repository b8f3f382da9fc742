"""The reference stack's topology: which components exist, their names and their ports.

One definition, used by every runtime. Names are what chaos and the CLI address
(`redis-2`, `worker-1`, `api-2`, `kafka`, `cassandra`); ports are all derived from one base
port so a whole stack moves with `--base-port` and two stacks can coexist.

Failure detectors are sized for this 2-core machine so that a Redis failover fits well inside a
2-minute campaign (see REDIS_NODE_TIMEOUT_MS and KAFKA_SESSION_TIMEOUT_MS).
"""

from __future__ import annotations

from dataclasses import dataclass

# Redis Cluster marks a primary failed after this long without a reply; its replica is then
# promoted within about one more timeout. 2 s instead of the 15 s default: a failover takes
# ~3-5 s here, well inside a 2-minute campaign, while GC-free Redis never pauses that long.
REDIS_NODE_TIMEOUT_MS = 2000
# A fan-out worker that stopped answering (frozen, or cut off from Kafka) is noticed by the Kafka
# group coordinator after this long and its partitions are reassigned. 10 s instead of 45 s (the
# broker minimum is lowered to match). A killed worker goes sooner: its peers remove it
# (targets/feed/peers.py).
KAFKA_SESSION_TIMEOUT_MS = 10000
# A heartbeat a second leaves a session 1 s of margin over the kafka-pause experiment's 8 s
# broker pause. At 2 s the last answered heartbeat could be 2 s old when the broker stopped:
# the sessions expired at the heal, and the broker held the lane's rebalance one more session
# (10 s) for the stale member (VERIFY-HISTORY, the twenty-first table).
KAFKA_HEARTBEAT_MS = 1000

REDIS_NODES = 6            # 3 primaries + 3 replicas
# The client roles with links of their own to every store node (Toxiproxy proxies), so that a
# network fault can reach one role and not the other: "slow the API's link to redis-2, not the
# workers'". Every other client (the harness, the nodes' replication) uses the shared link.
CLIENT_ROLES = ("api", "worker")


def role_link(role: str, node: str) -> str:
    """The Toxiproxy proxy of one client role's link to one store node (`api-to-redis-2`)."""
    return f"{role}-to-{node}"


def links_of(node: str) -> list[str]:
    """Every proxy that reaches `node` (`redis-N`, `kafka`, `cassandra`): the shared one and each role's."""
    return [node, *(role_link(role, node) for role in CLIENT_ROLES)]


# The links in front of the stores, one proxy each: the load generator's to nginx
# (`generator->nginx`: client-side faults) and nginx's to each API instance (`nginx->api-N`).
# The harness's own probes and read-backs reach nginx directly: a fault on the generator's link
# is the clients' trouble, not the instrument's.
GENERATOR_LINK = role_link("generator", "nginx")
# The external runtime's one link: the load generator's to the user's service (harness/runtime/external.py).
TARGET_LINK = role_link("generator", "target")


def nginx_link(api: str) -> str:
    return role_link("nginx", api)
TWEETS_TOPIC = "tweets"
THROTTLED_TOPIC = "tweets-throttled"   # the middle band's rate-capped fan-out lane
ENGAGEMENT_TOPIC = "engagement"        # like events for the counter aggregator
RETRY_TOPIC = "timeline-retry"         # timeline writes parked while their Redis shard is down
TWEETS_PARTITIONS = 6
KEYSPACE = "feed"


# Every port of a stack lies in [base_port, base_port + PORT_BLOCK). Keep the block below the
# kernel's ephemeral range (32768+ by default), where outgoing connections pick their ports.
PORT_BLOCK = 600
MAX_BASE_PORT = 32768 - PORT_BLOCK


@dataclass(frozen=True, kw_only=True)
class Topology:
    base_port: int = 19000
    api_instances: int = 2
    fanout_workers: int = 2
    host: str = "127.0.0.1"   # every component binds here; load and faults go nowhere else

    def __post_init__(self) -> None:
        if not 1024 <= self.base_port <= MAX_BASE_PORT:
            raise ValueError(f"base_port {self.base_port} must be within [1024, {MAX_BASE_PORT}]")

    # --- Toxiproxy
    @property
    def toxiproxy_port(self) -> int:
        return self.base_port

    # --- Redis Cluster: real ports, and the proxy ports clients (and the nodes' announcements) use
    def redis_names(self) -> list[str]:
        return [f"redis-{i}" for i in range(1, REDIS_NODES + 1)]

    def redis_port(self, i: int) -> int:     # i is 1-based
        return self.base_port + 100 + i

    def redis_bus_port(self, i: int) -> int:
        # Not the default port + 10000: that leaves the block and can land in the ephemeral range.
        return self.base_port + 120 + i

    def redis_proxy_port(self, i: int) -> int:
        return self.base_port + 110 + i

    def redis_proxy_addresses(self) -> list[str]:
        return [f"{self.host}:{self.redis_proxy_port(i)}" for i in range(1, REDIS_NODES + 1)]

    # --- a client role's own links (CLIENT_ROLES): Toxiproxy proxies of their own
    def _role_offset(self, role: str) -> int:
        if role not in CLIENT_ROLES:
            raise ValueError(f"unknown client role {role!r} (one of {', '.join(CLIENT_ROLES)})")
        return CLIENT_ROLES.index(role)

    def redis_link_port(self, role: str, i: int) -> int:
        return self.base_port + 130 + 10 * self._role_offset(role) + i

    def redis_link_addresses(self, role: str) -> list[str]:
        """The role's addresses of every node, each as `host:link_port@announced_port`: the
        nodes announce their shared proxy port, which the role's clients map to their own."""
        return [f"{self.host}:{self.redis_link_port(role, i)}@{self.redis_proxy_port(i)}"
                for i in range(1, REDIS_NODES + 1)]

    def kafka_listener_port(self, role: str) -> int:
        """The broker's listener of the role (advertised as the role's proxy port)."""
        return self.base_port + 206 + self._role_offset(role)

    def kafka_link_port(self, role: str) -> int:
        return self.base_port + 211 + self._role_offset(role)

    def cassandra_link_port(self, role: str) -> int:
        return self.base_port + 311 + self._role_offset(role)

    def nginx_link_port(self, i: int) -> int:
        """nginx's proxy to API instance i (its upstream address for it)."""
        return self.base_port + 520 + i

    @property
    def generator_link_port(self) -> int:
        """The load generator's proxy to nginx (where Locust sends its requests)."""
        return self.base_port + 502

    @property
    def generator_master_port(self) -> int:
        """The Locust master of a distributed run (`--generators`): generators join it here."""
        return self.base_port + 503

    # --- Kafka (one KRaft broker+controller)
    @property
    def kafka_port(self) -> int:
        return self.base_port + 200

    @property
    def kafka_controller_port(self) -> int:
        return self.base_port + 201

    @property
    def kafka_internal_port(self) -> int:
        return self.base_port + 202

    @property
    def kafka_proxy_port(self) -> int:
        return self.base_port + 210

    @property
    def kafka_jmx_exporter_port(self) -> int:
        return self.base_port + 205

    # --- Cassandra (one node)
    @property
    def cassandra_port(self) -> int:
        return self.base_port + 300

    @property
    def cassandra_storage_port(self) -> int:
        return self.base_port + 301

    @property
    def cassandra_jmx_port(self) -> int:
        return self.base_port + 302

    @property
    def cassandra_jmx_exporter_port(self) -> int:
        return self.base_port + 305

    @property
    def cassandra_proxy_port(self) -> int:
        return self.base_port + 310

    # --- Prometheus and exporters
    @property
    def prometheus_port(self) -> int:
        return self.base_port + 400

    @property
    def redis_exporter_port(self) -> int:
        return self.base_port + 401

    @property
    def nginx_exporter_port(self) -> int:
        return self.base_port + 402

    @property
    def node_exporter_port(self) -> int:
        return self.base_port + 403

    # --- nginx, API instances, fan-out workers
    @property
    def nginx_port(self) -> int:
        return self.base_port + 500

    @property
    def nginx_status_port(self) -> int:
        return self.base_port + 501

    def api_names(self) -> list[str]:
        return [f"api-{i}" for i in range(1, self.api_instances + 1)]

    def api_port(self, i: int) -> int:
        return self.base_port + 510 + i

    def worker_names(self) -> list[str]:
        return [f"worker-{i}" for i in range(1, self.fanout_workers + 1)]

    def worker_metrics_port(self, i: int) -> int:
        return self.base_port + 540 + i

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.nginx_port}"

    @property
    def load_url(self) -> str:
        """The API as the load generator reaches it: through its own link (GENERATOR_LINK)."""
        return f"http://{self.host}:{self.generator_link_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    def all_ports(self) -> list[int]:
        """Every port the stack binds, for the port-in-use check before anything starts."""
        ports = [self.toxiproxy_port, self.kafka_port, self.kafka_controller_port, self.kafka_internal_port,
                 self.kafka_proxy_port,
                 self.kafka_jmx_exporter_port, self.cassandra_port, self.cassandra_storage_port,
                 self.cassandra_jmx_port, self.cassandra_jmx_exporter_port, self.cassandra_proxy_port,
                 self.prometheus_port, self.redis_exporter_port, self.nginx_exporter_port,
                 self.node_exporter_port, self.nginx_port, self.nginx_status_port, self.generator_link_port]
        for i in range(1, REDIS_NODES + 1):
            ports += [self.redis_port(i), self.redis_bus_port(i), self.redis_proxy_port(i)]
        for role in CLIENT_ROLES:
            ports += [self.redis_link_port(role, i) for i in range(1, REDIS_NODES + 1)]
            ports += [self.kafka_listener_port(role), self.kafka_link_port(role), self.cassandra_link_port(role)]
        ports += [self.api_port(i) for i in range(1, self.api_instances + 1)]
        ports += [self.nginx_link_port(i) for i in range(1, self.api_instances + 1)]
        ports += [self.worker_metrics_port(i) for i in range(1, self.fanout_workers + 1)]
        return ports
