"""The workers' watch on each other (targets/feed/peers.py): whom it takes for a peer, and what
it takes for a death."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pytest

from targets.feed.peers import Peer, client_id, members_by_peer, peer_of, refuses
from targets.feed.settings import ConfigError, Settings

pytestmark = pytest.mark.unit

BASE_ENV = {"FEED_CASSANDRA": "127.0.0.1:1", "FEED_REDIS": "127.0.0.1:2", "FEED_KAFKA": "127.0.0.1:3",
            "FEED_TOKEN_SECRET": "s"}


def test_a_client_id_names_the_port_and_differs_per_process() -> None:
    first, second = client_id(27541), client_id(27541)
    assert first != second
    assert peer_of(first, "/127.0.0.1") == Peer(first, "127.0.0.1", 27541)


@pytest.mark.parametrize("client", ["rdkafka", "lag-fanout", "fanout-worker@", "fanout-worker@x#1",
                                    "fanout-worker@0#1", "fanout-worker@70000#1"])
def test_a_client_that_is_not_a_worker_or_names_no_port_is_no_peer(client: str) -> None:
    assert peer_of(client, "/127.0.0.1") is None


def test_members_are_grouped_by_peer_and_group_leaving_out_this_process_and_other_clients() -> None:
    own, other = "fanout-worker@1#a", "fanout-worker@2#b"
    groups: dict[str, dict[str, Any]] = {
        "fanout": {"members": [{"member_id": f"{own}-1", "client_id": own, "client_host": "/127.0.0.1"},
                               {"member_id": f"{other}-1", "client_id": other, "client_host": "/127.0.0.1"},
                               {"member_id": "rdkafka-1", "client_id": "rdkafka", "client_host": "/127.0.0.1"}]},
        "counters": {"members": [{"member_id": f"{other}-2", "client_id": other, "client_host": "/127.0.0.1"}]},
        "fanout-retry": {"members": []},
    }
    assert members_by_peer(groups, own) == {Peer(other, "127.0.0.1", 2): {"fanout": [f"{other}-1"],
                                                                           "counters": [f"{other}-2"]}}


def test_a_port_with_a_listener_accepts_and_one_without_refuses() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert refuses("127.0.0.1", port) is False
    assert refuses("127.0.0.1", port) is True


def test_a_listener_that_never_accepts_is_not_taken_for_a_death() -> None:
    """A paused process: its socket listens, the kernel completes the handshake, nobody reads."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        port = listening.getsockname()[1]
        assert refuses("127.0.0.1", port) is False
        assert refuses("127.0.0.1", port) is False


def test_a_listener_whose_queue_is_full_is_not_taken_for_a_death() -> None:
    """A process paused for a while: nobody accepts, the queue fills, new handshakes time out."""
    with socket.socket() as listening, contextlib.ExitStack() as clients:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        port = listening.getsockname()[1]
        for _ in range(64):   # fill the accept queue until a handshake gets no answer
            try:
                clients.enter_context(socket.create_connection(("127.0.0.1", port), timeout=0.2))
            except TimeoutError:
                break
        else:
            pytest.fail("the accept queue never filled")
        assert refuses("127.0.0.1", port, timeout_s=0.2) is None


@pytest.mark.parametrize(("value", "probe_ms"), [(None, 200), ("0", 0), ("50", 50)])
def test_the_probe_interval_is_off_or_at_least_50_ms(value: str | None, probe_ms: int) -> None:
    env = {**BASE_ENV, **({"FEED_PEER_PROBE_MS": value} if value is not None else {})}
    assert Settings.from_env(env).peer_probe_ms == probe_ms


@pytest.mark.parametrize("value", ["1", "49", "-1", "x"])
def test_a_probe_interval_that_would_spin_or_is_no_number_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="FEED_PEER_PROBE_MS"):
        Settings.from_env({**BASE_ENV, "FEED_PEER_PROBE_MS": value})
