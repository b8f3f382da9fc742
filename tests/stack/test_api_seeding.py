"""Seeding a service through its public API (harness/api_seeding.py) stops at once, saying why,
when the service refuses: a token source that is not the service's, or users that were
registered before under other handles (the shared stack's users hold their seeded handles).
An answer a retry may change (a 5xx) is asked again, up to 5 times."""

from __future__ import annotations

import threading
import time

import pytest

from chaos.build import build
from harness.api_seeding import ATTEMPTS, ApiSeeder, SeedingRefused
from harness.campaign import chaos_stack
from harness.tokens import SharedSecret
from tests.stack.conftest import Stack
from workloads.graph import Graph, GraphSpec

pytestmark = pytest.mark.stack


def small_graph() -> Graph:
    return Graph.from_followers(GraphSpec(users=40, celebrities=0, push_threshold=200, pull_threshold=1000),
                                {a: [f for f in range(1, 41) if f != a] for a in range(1, 41)})


def test_a_wrong_token_secret_stops_the_seeding_at_the_first_answer(stack: Stack) -> None:
    said: list[str] = []
    t0 = time.monotonic()
    # the first call reads the service's note of what it holds (harness/api_seeding.py)
    with pytest.raises(SeedingRefused, match=r"GET /v1/users/me as user 1 answered 401.*--token-secret-file"):
        ApiSeeder(stack.runtime.api_url, SharedSecret("not-the-stack-s-secret" * 2), said.append).seed(small_graph())
    assert time.monotonic() - t0 < 10   # refused, not retried: a 401 will not change


def test_users_registered_under_other_handles_are_named_with_the_answer(stack: Stack) -> None:
    with pytest.raises(SeedingRefused, match=r"PUT /v1/users/me as user 1 answered 409.*seed a fresh service"):
        ApiSeeder(stack.runtime.api_url, SharedSecret(stack.secret), lambda _m: None).seed(small_graph())


def test_a_5xx_is_asked_again_until_it_changes_or_the_attempts_run_out(whole: Stack) -> None:
    """Both of nginx's links to the API down: every call answers 502."""
    links = [build("down", f"nginx->api-{i}", {}, chaos_stack(whole.runtime)) for i in (1, 2)]
    try:
        for link in links:
            link.invoke()
        seeder = ApiSeeder(whole.runtime.api_url, SharedSecret(whole.secret), lambda _m: None)
        with pytest.raises(SeedingRefused, match=rf"GET /v1/users/me as user 1 answered 502 {ATTEMPTS} times"):
            seeder.seed(small_graph())
        assert seeder.retries >= ATTEMPTS - 1
        # healed a second into the retries: the call is answered (409: the shared stack's handles)
        def heal() -> None:
            for link in links:
                link.heal()

        healer = threading.Timer(1.0, heal)
        healer.start()
        seeder = ApiSeeder(whole.runtime.api_url, SharedSecret(whole.secret), lambda _m: None)
        with pytest.raises(SeedingRefused, match=r"answered 409"):
            seeder.seed(small_graph())
        healer.join()
        assert seeder.retries >= 1
    finally:
        for link in links:   # (a heal is done once)
            link.heal()
