"""Which errors mean "a store cannot answer" (the only ones the API may fail open on).

The API degrades on purpose in a few places (ARCHITECTURE.md, "Fail-open policy"): a cache it
cannot reach is read around from the store, a write guard it cannot reach is skipped, a user
registry it cannot reach lets an authenticated user through. Each of those is for an *outage*:
a timeout, a connection refused or lost, a cluster or replica set saying it is unavailable.
Anything else (a value the driver cannot encode, a script error, a bug) is not an outage: it
propagates, and the request gets a 500 that is logged and counted
(`feed_internal_errors_total`), never a pass.
"""

from __future__ import annotations

import logging
import traceback

import cassandra
import cassandra.cluster
import cassandra.connection
import redis.exceptions
from prometheus_client import Counter

log = logging.getLogger("feed.outage")

FAILED_OPEN = Counter("feed_failed_open_total", "Requests served around a store that could not answer",
                      ["what", "error"])

class QueueUnavailable(RuntimeError):
    """Kafka did not take an event (not delivered in time, or the producer's queue is full)."""


_REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,      # refused, reset, loading (BusyLoadingError), pool exhausted
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,         # CLUSTERDOWN, MASTERDOWN, the client's retries used up
    redis.exceptions.TryAgainError,        # a slot migrating
    redis.exceptions.ReadOnlyError,        # a write reached a node demoted by a failover
    redis.exceptions.AskError,             # MOVED / ASK left over after the client's own retries
    redis.exceptions.RedisClusterException,  # no reachable node, slot not covered
)
_CASSANDRA_DOWN: tuple[type[BaseException], ...] = (
    cassandra.cluster.NoHostAvailable,
    cassandra.OperationTimedOut,           # the driver's own request timeout
    cassandra.Unavailable,                 # not enough replicas alive
    cassandra.CoordinationFailure,         # read / write failures at the replicas
    cassandra.Timeout,                     # read / write timeouts at the coordinator
    cassandra.connection.ConnectionException,
)
# What a fail-open site catches: its handler then calls `fail_open` (or the API's
# `cache_failed`), which re-raises whatever is not an outage.
MAYBE_DOWN: tuple[type[Exception], ...] = (Exception,)
_NETWORK: tuple[type[BaseException], ...] = (TimeoutError, OSError)   # asyncio's timeouts are TimeoutError


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says a store (Redis, Cassandra, Kafka) could not answer, as opposed to a bug or
    bad data. A script refused because its node sees the cluster down counts. Two shapes of
    redis-py's asyncio cluster client count too: a node dying
    mid-request surfaces as a RuntimeError from asyncio's closed transport, or as an
    AttributeError raised inside redis-py on a connection whose reader is already gone."""
    if isinstance(exc, _REDIS_DOWN + _CASSANDRA_DOWN + _NETWORK + (QueueUnavailable,)):
        return True
    if isinstance(exc, RuntimeError) and ("closed=True" in str(exc) or "handler is closed" in str(exc)):
        return True
    # A script's command on a node that sees the cluster down (a wiped shard coming back): Redis
    # answers with a plain script error, not CLUSTERDOWN, so redis-py raises a ResponseError.
    if isinstance(exc, redis.exceptions.ResponseError) and "while the cluster is down" in str(exc):
        return True
    if isinstance(exc, AttributeError) and exc.__traceback__ is not None:
        frames = traceback.extract_tb(exc.__traceback__)
        return bool(frames) and "/redis/" in frames[-1].filename
    return False


def outage_only(exc: BaseException) -> None:
    """Called in an `except MAYBE_DOWN` block: re-raise `exc` unless it is an outage."""
    if not is_outage(exc):
        raise exc


def fail_open(what: str, exc: BaseException) -> None:
    """Called in an `except` block: go on without `what` if `exc` is an outage (logged and
    counted), else re-raise `exc`, so that a bug is a 500 and never a pass."""
    outage_only(exc)
    FAILED_OPEN.labels(what, type(exc).__name__).inc()
    log.warning("%s unavailable, going on without it: %s: %s", what, type(exc).__name__, exc)
