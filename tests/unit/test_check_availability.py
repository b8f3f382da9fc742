"""The availability check on hand-written runs: a Redis primary's fault window, feed reads of
readers whose data the killed node held (affected) and of everyone else (healthy shards)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.crc import key_slot

from harness.checks import Verdict, availability
from records import FaultWindow, Request
from targets.feed.cache import timeline_key
from targets.feed.follow_sets import following_key

from .conftest import FAULT_END, FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit

SLOTS = [(0, 5460)]
AFFECTED = next(u for u in range(1, 100) if availability.user_slot(u) <= 5460)
HEALTHY = next(u for u in range(1, 100) if availability.user_slot(u) > 5460)


def killed_primary(spec: RunSpec, reads: list[tuple[int, int]]) -> None:
    """A kill of redis-1 (slots 0-5460) and, inside its window, one feed read per (reader, status)."""
    spec.faults = [FaultWindow(name="kill-redis-primary", target="redis-1", start_t=FAULT_START, end_t=FAULT_END,
                               events=[{"t": FAULT_START, "what": "killed", "slots": [list(r) for r in SLOTS]}])]
    step = (FAULT_END - FAULT_START) / (len(reads) + 1)
    spec.requests = [Request(t=FAULT_START + step * (n + 1), op="feed", latency_ms=40, status=status, user=user,
                             error=None if status == 200 else f"HTTP {status}")
                     for n, (user, status) in enumerate(reads)]


def test_the_slot_of_a_user_is_the_slot_of_the_reference_targets_keys_for_them() -> None:
    for user in (1, 42, 1999):
        assert availability.user_slot(user) == key_slot(timeline_key(user).encode()) == key_slot(
            following_key(user).encode())


def test_every_feed_read_served_passes(spec: RunSpec, run_dir: Path) -> None:
    killed_primary(spec, [(AFFECTED, 200)] * 500 + [(HEALTHY, 200)] * 500)
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    window = result.evidence["windows"][0]
    assert (window["affected_reads"], window["healthy_reads"], window["served_share"]) == (500, 500, 1.0)


def test_one_failed_read_on_a_healthy_shard_fails(spec: RunSpec, run_dir: Path) -> None:
    killed_primary(spec, [(AFFECTED, 200)] * 999 + [(HEALTHY, 502)])   # 99.9 % served: the share holds
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "1 feed reads failed for readers on healthy shards" in result.summary
    assert result.evidence["windows"][0]["healthy_failed_examples"][0]["reader"] == HEALTHY


def test_too_few_reads_served_for_affected_readers_fails(spec: RunSpec, run_dir: Path) -> None:
    killed_primary(spec, [(AFFECTED, 200)] * 997 + [(AFFECTED, 504)] * 3)   # healthy shards untouched
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "99.70% of 1000 feed reads served" in result.summary
    spec.manifest["slo"] = {"cache_node_served_min": 0.99}
    assert availability.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_reads_outside_the_window_and_abandoned_ones_do_not_count(spec: RunSpec, run_dir: Path) -> None:
    killed_primary(spec, [(HEALTHY, 200)] * 10)
    spec.requests += [Request(t=T0 + 1, op="feed", latency_ms=40, status=502, user=HEALTHY, error="HTTP 502"),
                      Request(t=FAULT_START + 1, op="feed", latency_ms=40, status=0, user=HEALTHY,
                              error="cut by the client", abandoned=True)]
    assert availability.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_without_a_redis_node_fault_it_is_not_exercised(spec: RunSpec, run_dir: Path) -> None:
    result = availability.check(spec.write(run_dir))   # the conftest's fault names no slots
    assert result.verdict is Verdict.UNKNOWN and not result.gating


def paused(spec: RunSpec, target: str, statuses: list[int], *, also: FaultWindow | None = None) -> None:
    """A pause of `target` (no slots taken) and, inside it, one feed read per status."""
    spec.faults = [FaultWindow(name="pause", target=target, start_t=FAULT_START, end_t=FAULT_END,
                               events=[{"t": FAULT_START, "what": "paused", "component": target}])]
    spec.faults += [also] if also is not None else []
    step = (FAULT_END - FAULT_START) / (len(statuses) + 1)
    spec.requests = [Request(t=FAULT_START + step * (n + 1), op="feed", latency_ms=40, status=status, user=HEALTHY,
                             error=None if status == 200 else f"HTTP {status}") for n, status in enumerate(statuses)]


def test_a_read_failed_while_a_component_the_read_path_does_not_use_is_down_fails(spec: RunSpec,
                                                                                   run_dir: Path) -> None:
    paused(spec, "kafka", [200] * 999 + [502])
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.gating
    assert result.summary == ("pause on kafka: 1 of 1000 feed reads failed, and the read path does not use kafka "
                              "(bound 0)")
    paused(spec, "worker-1", [200] * 1000)
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and "the read path does not use it: bound all" in result.summary


def test_reads_in_another_fault_s_window_are_not_charged_to_one_the_read_path_does_not_use(
        spec: RunSpec, run_dir: Path) -> None:
    redis_kill = FaultWindow(name="kill", target="redis-1", start_t=FAULT_START + 2, end_t=FAULT_END,
                             events=[{"t": FAULT_START + 2, "what": "killed", "slots": [[0, 5460]]}])
    paused(spec, "kafka", [200] * 500 + [502] * 2, also=redis_kill)   # the 502s fall in the kill too
    result = availability.check(spec.write(run_dir))
    kafka = next(w for w in result.evidence["windows"] if w["target"] == "kafka")
    assert kafka["healthy_failed"] == 0, kafka


def test_a_fault_of_what_every_read_needs_is_not_judged_here(spec: RunSpec, run_dir: Path) -> None:
    paused(spec, "cassandra", [502] * 100)
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating
    assert result.evidence["not_judged"] == ["pause on cassandra"]


def test_one_client_role_s_link_is_judged_by_what_that_role_does(spec: RunSpec, run_dir: Path) -> None:
    """The workers' link to anything: no read may fail. The API's link to a Redis primary: judged
    like the node's (its slots). The API's link to Cassandra: what every read needs."""
    paused(spec, "worker->redis-1", [200] * 99 + [502])
    result = availability.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "the read path does not use worker->redis-1" in result.summary
    spec.faults = [FaultWindow(name="down", target="api->redis-1", start_t=FAULT_START, end_t=FAULT_END,
                               events=[{"t": FAULT_START, "what": "link-down", "slots": [[0, 5460]]}])]
    result = availability.check(spec.write(run_dir))
    assert [w["slots"] for w in result.evidence["windows"]] == [[(0, 5460)]], result.evidence
    paused(spec, "api->cassandra", [502] * 10)
    result = availability.check(spec.write(run_dir))
    assert result.evidence["not_judged"] == ["pause on api->cassandra"]
