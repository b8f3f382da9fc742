"""The fan-out workers' watch on each other: a dead worker's partitions move on at once.

Kafka's group coordinator learns that a consumer died only when its session ends (10 s here):
until then the dead worker's partitions belong to nobody and their tweets wait. A shorter
session would cost every pause longer than it (the broker's own, a GC, a frozen VM) a
rebalance, so the workers find a death themselves, from a sign a pause cannot give:
- each worker names its consumers after itself and its metrics endpoint
  (`client.id` = `fanout-worker@PORT#TOKEN`, TOKEN new for each process);
- every worker reads its groups' members (DescribeGroups) and probes the other workers'
  endpoints, a TCP connect every PROBE_S;
- a peer that accepted a connection before and now refuses one has no process behind its port
  (a paused process keeps its listening socket, so the kernel still accepts, or, once its queue
  is full, the handshake times out: a pause, or a network fault that drops packets, is never
  taken for a death);
- its members are removed from every group they are in, on its behalf (LeaveGroup with their
  member ids, what Kafka's Admin `removeMembersFromConsumerGroup` sends), and each group
  rebalances on the survivors' next heartbeat (FEED_KAFKA_HEARTBEAT_MS).

Only the members of the process found dead are removed: the groups are read again after the
refusal, and the token in the client id is that process's alone, so a worker restarted on the
same port (a new token) is not touched. A member of a dead process listed later (one that was
joining as it died) is removed when seen. Two survivors removing the same peer is harmless: the
second is told the members are unknown.

The endpoint is the host the broker saw the member connect from and the port in its client id;
the workers' metrics listen on 127.0.0.1, so this watch works where the workers share a host
(processes, or containers on the host's network, as here), and does nothing otherwise: a peer
whose port never accepted a connection is never taken for dead.

What it gives up: the session used to leave a killed worker's requests still in flight (a
counter add held up on a slow link to Cassandra) 10 s to land before another worker took its
partitions; now it is about a second at most (0.23-1.14 s measured). No experiment slows the
workers' store link and kills a worker at once.

Why kafka-python: confluent-kafka (librdkafka) has no call that removes another member from a
group; kafka-python's admin client has it (`remove_group_members`), and reads groups as well.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import MemberToRemove
from kafka.errors import KafkaError, NoError
from prometheus_client import Counter

log = logging.getLogger("feed.peers")

CLIENT_ID_PREFIX = "fanout-worker@"
PROBE_S = 0.2           # how often each known peer's endpoint is tried
CONNECT_TIMEOUT_S = 0.5
DESCRIBE_S = 2.0        # how often the groups' members are read again
BACKOFF_S = 1.0         # after the broker did not answer

REMOVED = Counter("feed_worker_peer_members_removed_total",
                  "Group members of a dead fan-out worker removed on its behalf by a surviving worker")


def client_id(metrics_port: int) -> str:
    """The client.id of one worker process's consumers: its metrics port and a token of its own."""
    return f"{CLIENT_ID_PREFIX}{metrics_port}#{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Peer:
    client_id: str
    host: str
    port: int


def peer_of(client: str, client_host: str) -> Peer | None:
    """The worker a group member belongs to, from its client.id and the host the broker saw; None
    for a client that is not a fan-out worker (or names no port)."""
    if not client.startswith(CLIENT_ID_PREFIX):
        return None
    port_text = client[len(CLIENT_ID_PREFIX):].split("#", 1)[0]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return Peer(client, client_host.lstrip("/"), int(port_text))


def members_by_peer(groups: Mapping[str, Mapping[str, Any]], own: str) -> dict[Peer, dict[str, list[str]]]:
    """Each other worker's member ids, per group, from a describe_groups answer."""
    found: dict[Peer, dict[str, list[str]]] = {}
    for group, description in groups.items():
        for member in description.get("members") or []:
            peer = peer_of(str(member.get("client_id") or ""), str(member.get("client_host") or ""))
            if peer is None or peer.client_id == own:
                continue
            found.setdefault(peer, {}).setdefault(group, []).append(str(member["member_id"]))
    return found


def refuses(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> bool | None:
    """True when nothing listens on the port (the connection is refused), False when it accepts,
    None when the answer proves nothing (a timeout, an unreachable host)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return None


class Admin(KafkaAdminClient):  # type: ignore[misc]
    """kafka-python's admin client, except that a constructor whose first bootstrap fails stops the
    IO thread and sockets it had started (kafka-python 3.0 leaves them running, one more each
    time the watch tries again while the broker is away)."""

    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            with contextlib.suppress(Exception):   # what KafkaAdminClient.close() would stop
                self._client.close()
            with contextlib.suppress(Exception):
                self._net.stop()
            raise


class PeerWatch:
    """A daemon thread in each worker process (see the module's docstring)."""

    def __init__(self, bootstrap: str, groups: Iterable[str], own_client_id: str,
                 running: Callable[[], bool], probe_s: float = PROBE_S) -> None:
        self.bootstrap = bootstrap
        self.groups = list(groups)
        self.own = own_client_id
        self.running = running
        self.probe_s = probe_s
        self.members: dict[Peer, dict[str, list[str]]] = {}
        self.answered: set[Peer] = set()   # peers whose endpoint accepted a connection
        self.dead: set[str] = set()        # client ids of peers found dead: any member of theirs still listed goes
        self.thread = threading.Thread(target=self._run, name="peer-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        admin: Admin | None = None
        described = 0.0
        while self.running():
            try:
                if admin is None:   # kept from then on: it reconnects by itself
                    admin = Admin(bootstrap_servers=self.bootstrap, client_id=f"peer-watch-{self.own}",
                                  request_timeout_ms=5000)
                if time.monotonic() - described > DESCRIBE_S:
                    self._describe(admin)
                    described = time.monotonic()
                self._probe(admin)
            except KafkaError as exc:   # the broker away, paused or restarting: Kafka's session still applies
                log.warning("peer watch: Kafka did not answer (%r); trying again in %.0f s", exc, BACKOFF_S)
                time.sleep(BACKOFF_S)
                continue
            except Exception:
                log.exception("peer watch: unexpected error; trying again in %.0f s", BACKOFF_S)
                time.sleep(BACKOFF_S)
                continue
            time.sleep(self.probe_s)
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()

    def _describe(self, admin: Admin) -> None:
        self.members = members_by_peer(admin.describe_groups(self.groups), self.own)
        self.answered &= set(self.members)
        for peer in [p for p in self.members if p.client_id in self.dead]:   # a dead process's late member
            self._remove(admin, peer, self.members.pop(peer))

    def _probe(self, admin: Admin) -> None:
        for peer in list(self.members):
            refused = refuses(peer.host, peer.port)
            if refused is False:
                self.answered.add(peer)
            elif refused and peer in self.answered:
                # Its members as they are now (one may have joined again since the last read): the
                # client id's token is this process's alone, so a successor on the port is not among them.
                current = members_by_peer(admin.describe_groups(self.groups), self.own).get(peer, {})
                self.dead.add(peer.client_id)
                del self.members[peer]
                self.answered.discard(peer)
                self._remove(admin, peer, current)

    def _remove(self, admin: Admin, peer: Peer, groups: dict[str, list[str]]) -> None:
        reason = f"{peer.host}:{peer.port} refused a connection (peer watch of {self.own})"
        removed = []
        for group, member_ids in groups.items():
            answer = admin.remove_group_members(group, [MemberToRemove(member_id=m, reason=reason)
                                                        for m in member_ids])
            gone = sum(1 for error in answer.values() if error is NoError)
            REMOVED.inc(gone)
            removed += [f"{group}: {gone} of {len(member_ids)}"]
        log.info("peer %s (%s:%d) refused a connection: its group members removed (%s)",
                 peer.client_id, peer.host, peer.port, ", ".join(removed) or "none listed")
