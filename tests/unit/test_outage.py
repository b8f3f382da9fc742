"""The fail-open policy's one question: is an error an outage (a store that cannot answer) or
anything else (a bug, bad data), which must never be served around."""

from __future__ import annotations

import struct

import cassandra
import cassandra.cluster
import cassandra.connection
import pytest
import redis.exceptions

from targets.feed.outage import QueueUnavailable, fail_open, is_outage

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("exc", [
    redis.exceptions.ConnectionError("Connection refused"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("LOADING"),
    redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis.exceptions.MasterDownError("MASTERDOWN"),
    redis.exceptions.TryAgainError("TRYAGAIN"),
    redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
    redis.exceptions.SlotNotCoveredError("slot 42 not covered"),
    redis.exceptions.RedisClusterException("Redis Cluster cannot be connected"),
    cassandra.cluster.NoHostAvailable("Unable to connect to any servers", {}),
    cassandra.OperationTimedOut("errors={}, last_host=127.0.0.1"),
    cassandra.Unavailable("Cannot achieve consistency level ONE"),
    cassandra.ReadTimeout("Operation timed out"),
    cassandra.WriteTimeout("Operation timed out", write_type=0),
    cassandra.connection.ConnectionShutdown("Connection to 127.0.0.1 was closed"),
    TimeoutError(),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    RuntimeError("unable to perform operation on <TCPTransport closed=True reading=False>; the handler is closed"),
    QueueUnavailable("kafka: Local: Message timed out"),
    redis.exceptions.ResponseError("Script attempted to execute a command while the cluster is down script: "
                                   "9ab5d0ee, on @user_script:5."),   # seen as a wiped shard came back
])
def test_unreachable_stores_are_outages(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize("exc", [
    struct.error("argument out of range"),                     # a value the driver cannot encode
    OverflowError("int too big to convert"),
    cassandra.InvalidRequest("Error from server: code=2200 [Invalid query]"),
    redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    redis.exceptions.ResponseError("ERR Error running script: attempt to compare nil with number"),
    redis.exceptions.DataError("Invalid input of type: 'NoneType'"),
    KeyError("tweet_id"),
    TypeError("unsupported operand"),
    ValueError("invalid literal for int()"),
    RuntimeError("dictionary changed size during iteration"),
    AttributeError("'NoneType' object has no attribute 'handle'"),   # raised outside redis-py
])
def test_bugs_and_bad_data_are_not_outages(exc: BaseException) -> None:
    assert not is_outage(exc)


def test_fail_open_goes_on_after_an_outage_and_re_raises_anything_else() -> None:
    try:
        raise redis.exceptions.ConnectionError("Connection refused")
    except Exception as exc:  # noqa: BLE001 - the policy under test
        fail_open("cache", exc)   # returns: the caller goes on without the cache
    with pytest.raises(struct.error):
        try:
            raise struct.error("argument out of range")
        except Exception as exc:  # noqa: BLE001 - the policy under test
            fail_open("user registry", exc)
