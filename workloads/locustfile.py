"""The feed workload, run by Locust in its own process(es) (gevent stays here).

Open model: one scheduler user per Locust process sends every request at its arrival time
from `workloads.arrivals` (the scenario's phases and rates, this process's share of them),
whatever the earlier requests are doing. Latency is measured from that intended time, so a
stalled target is charged for every request that waited (no coordinated omission). When
MAX_IN_FLIGHT requests are outstanding an arrival is dropped and counted, never delayed; one
the scheduler itself could only start late (its event loop was busy) is counted late. Both go
to arrivals.jsonl once a second: the generator checker turns them into a validity verdict.

Operations (who acts is drawn with Zipf weights: a few users are very active):
feed (GET /v1/feed, a second page through the cursor 30 % of the time), ranked (the ranked
feed), deep_feed (a walk of WALK_PAGES pages through a feed while tweets arrive), delta (GET
/v1/feed/delta since the newest id the reader has seen), profile (GET /v1/users/{id}/tweets),
post and celebrity_post (POST /v1/tweets with an idempotency key, sent again with it when no
answer came, as an app does; celebrity posts come from pull-tier authors half the time,
throttled-band ones the other half), retry_post (a post whose
first attempt gets no answer, retried with its key), reply (a post answering a tweet seen in a
feed), delete (an author's own tweet, once followers had time to receive it), like and retweet
(a tweet seen in a feed; some retweets sent twice), unretweet (a retweet this process made),
follow, follow_large (of a throttled-band or pull-tier account, then watching the feed for its
backfill), and unfollow (half the time of a follow this process made, else of an account whose
tweet the reader was just served, then its feed read at once).

Beside the arrivals, FEEDLAB_LISTENERS users (this process's share of them) hold an SSE stream
(GET /v1/stream) open through the load, reconnecting when it ends: each connection goes to
streams.jsonl when it closes, each new-tweet event it carried to signals.jsonl.

Every request is appended to history.jsonl, every 201 to ledger.jsonl, every follow change to
graph_changes.jsonl, what every read served to observations.jsonl, and every other acknowledged
change the checks hold the target to (deletes, likes, retweets, replies, retried posts, large
follows) to actions.jsonl. Configuration comes from the environment (harness/load.py):
FEEDLAB_RUN_DIR, FEEDLAB_TOKEN_SECRET (or FEEDLAB_TOKENS_FILE: {user id: token}, from a user's
token command, harness/tokens.py), FEEDLAB_SEED, FEEDLAB_LOAD_START (epoch seconds),
FEEDLAB_PROCESSES, FEEDLAB_LISTENERS; the plan is the run directory's workload.json, the graph its graph.json.
In a distributed run (FEEDLAB_ROLE master or generator) a generator gets all of that from the
master, and sends its records there: workloads/distributed.py.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import gevent
import gevent.pool
import gevent.socket
import orjson
import sseclient
from geventhttpclient import HTTPClient
from locust import User, constant, events, task

from records import (
    ACTIONS,
    ARRIVALS,
    GRAPH,
    GRAPH_CHANGES,
    HISTORY,
    LEDGER,
    OBSERVATIONS,
    SIGNALS,
    STREAMS,
    WORKLOAD,
    Ack,
    Action,
    ArrivalSample,
    FollowChange,
    Observation,
    Request,
    Signal,
    StreamSpan,
)
from targets.feed.auth import issue_token
from workloads import distributed
from workloads.arrivals import ArrivalPlan, PhaseSpan
from workloads.graph import Graph, GraphSpec

RUN_DIR = Path(os.environ.get("FEEDLAB_RUN_DIR", "."))
SECRET = os.environ.get("FEEDLAB_TOKEN_SECRET", "")
SEED = int(os.environ.get("FEEDLAB_SEED", "1"))
LOAD_START = float(os.environ.get("FEEDLAB_LOAD_START", "0") or 0)
PROCESSES = int(os.environ.get("FEEDLAB_PROCESSES", "1"))
LISTENERS = int(os.environ.get("FEEDLAB_LISTENERS", "0"))
MAX_IN_FLIGHT = 1000        # outstanding requests per process before arrivals are dropped
LATE_S = 0.05               # an arrival started this much after its time is late
# Above BATCH_FROM arrivals/s per process, arrivals due within BATCH_S are sent on one wake-up
# (a wake-up per arrival costs a tenth of the process's CPU at 4,000/s). Each is still timed
# from its own due time, so the up to 0.5 ms it waited counts in its latency. Campaign rates
# are far below: they are sent on time, one by one.
BATCH_FROM, BATCH_S = 1000.0, 0.0005
SECOND_PAGE_SHARE = 0.3
SEEN_TWEETS = 2000          # tweet ids remembered for likes, retweets, replies, deletes
IMPATIENT_S = 0.001         # a retried post's first attempt: the client stops waiting after this
POST_RETRIES = 2            # a post with no answer (its connection cut, or timed out) is sent again this often
WALK_PAGES = 5              # pages of a walk through a feed (deep_feed)
DELETE_AFTER_S = 3.0        # a tweet is deleted once its followers had this long to receive it
RETWEET_AGAIN_SHARE = 0.2   # retweets sent twice, as a user tapping again
BACKFILL_EXPECTED = 5       # a large account's newest tweets a new follower must get
BACKFILL_WAIT_S = 25.0      # a new follower's feed is watched this long: the 10 s bound plus fault time in it
STREAM_READ_S = 20.0        # a stream silent this long is dead (the API sends a comment every 15 s)
STREAM_RETRY_S = 2.0        # a listener reconnects this long after its stream ended (the API's `retry`)

PLAN = ArrivalPlan(())
SEEDED = Graph.from_followers(GraphSpec(users=1, celebrities=0, push_threshold=1, pull_threshold=1), {})
USERS = 1
CELEBRITIES: list[int] = [1]
LARGE: frozenset[int] = frozenset()
PULL_TIER: list[int] = []
THROTTLED_BAND: list[int] = [1]
RISING = 1


def load_run(run_dir: Path) -> None:
    """The plan (workload.json) and the seeded graph (graph.json, graph.edges) of the run in
    `run_dir`, and what the workload derives from them."""
    global PLAN, SEEDED, USERS, CELEBRITIES, LARGE, PULL_TIER, THROTTLED_BAND, RISING
    if (run_dir / WORKLOAD).exists():
        PLAN = ArrivalPlan.from_phases(json.loads((run_dir / WORKLOAD).read_text()))
    if (run_dir / GRAPH).exists():
        # mapped read-only (graph.edges): every load process shares its pages
        SEEDED = Graph.read(run_dir)
    USERS = SEEDED.spec.users
    # Throttled-band and pull-tier authors: whose tweets the celebrity workload bursts.
    CELEBRITIES = [a for a in SEEDED.authors if SEEDED.follower_count(a) >= SEEDED.spec.push_threshold] or [1]
    LARGE = frozenset(CELEBRITIES)
    PULL_TIER = SEEDED.celebrities   # at or above the pull threshold
    THROTTLED_BAND = [a for a in CELEBRITIES if a not in PULL_TIER] or CELEBRITIES   # pushed, rate-capped
    # The account the celebrity workload pushes across the pull threshold with new followers.
    RISING = SEEDED.rising


def listeners(count: int, seed: int) -> list[int]:
    """The users who hold SSE streams: the same `count` in every process (each takes its share),
    drawn from everyone but the large and rising accounts (who follows them changes in a run)."""
    pool = [u for u in SEEDED.user_ids if u not in LARGE and u != RISING]
    return sorted(random.Random(seed * 104729 + 17).sample(pool, min(count, len(pool))))


_history = distributed.writer(RUN_DIR, HISTORY, buffered=True)   # flushed once a second
_ledger = distributed.writer(RUN_DIR, LEDGER)
_changes = distributed.writer(RUN_DIR, GRAPH_CHANGES)
_arrivals = distributed.writer(RUN_DIR, ARRIVALS)
_observations = distributed.writer(RUN_DIR, OBSERVATIONS, buffered=True)   # flushed once a second
_actions = distributed.writer(RUN_DIR, ACTIONS)
_streams = distributed.writer(RUN_DIR, STREAMS)
_signals = distributed.writer(RUN_DIR, SIGNALS)
TOKENS_FILE = os.environ.get("FEEDLAB_TOKENS_FILE")
_tokens: dict[int, str] = {int(u): t for u, t in json.loads(Path(TOKENS_FILE).read_text()).items()} \
    if TOKENS_FILE else {}
TOKENS_FROM = TOKENS_FILE or "the token secret"
if distributed.ROLE != "generator":   # a generator learns its run from the master (configure_generator)
    load_run(RUN_DIR)


def auth(user_id: int) -> dict[str, str]:
    token = _tokens.get(user_id)
    if token is None:
        if TOKENS_FILE or not SECRET:
            raise KeyError(f"no token for user {user_id} from {TOKENS_FROM}")
        token = _tokens[user_id] = issue_token(SECRET, user_id)
    return {"Authorization": f"Bearer {token}"}


def run_tokens() -> dict[str, str]:
    """A token for every user of the run, for generators (the secret stays with the master)."""
    ttl = PLAN.duration_s + distributed.TOKEN_MARGIN_S
    if TOKENS_FILE:
        return {str(u): t for u, t in _tokens.items()}
    return {str(u): issue_token(SECRET, u, ttl_s=ttl) for u in SEEDED.user_ids}


def configure_generator(folder: Path, setup: dict[str, Any]) -> None:
    """A generator's run, from the master's setup (its plan and graph written to `folder`)."""
    global SEED, PROCESSES, LISTENERS, TOKENS_FROM
    load_run(folder)
    SEED, PROCESSES, LISTENERS = int(setup["seed"]), int(setup["parts"]), int(setup["listeners"])
    _tokens.clear()
    _tokens.update({int(u): t for u, t in setup["tokens"].items()})
    TOKENS_FROM = "the master's setup"


GENERATOR: distributed.Generator | None = None


@events.init.add_listener
def join_the_run(environment: Any, **_: Any) -> None:
    """In a distributed run (workloads/distributed.py): the master's or a generator's side."""
    global GENERATOR
    if distributed.ROLE == "master":
        expected = int(os.environ["FEEDLAB_GENERATORS"])
        # built before any generator is admitted: minting the large graph's tokens takes seconds
        setup = distributed.setup_message(RUN_DIR, host=str(environment.host), tokens=run_tokens(), seed=SEED,
                                          parts=expected, listeners=LISTENERS)
        distributed.Master(environment.runner, RUN_DIR, expected=expected,
                           join_key=os.environ["FEEDLAB_JOIN_KEY"], setup=setup)
    elif distributed.ROLE == "generator":
        FeedWorkload.drives_plan = False   # the users Locust spawns here idle: the plan runs once, in drive_plan
        GENERATOR = distributed.Generator(environment.runner, configure_generator,
                                          functools.partial(drive_plan, environment))


def drive_plan(environment: Any) -> None:
    """A generator's share of the plan, run once (workloads/distributed.py says why not by Locust's users)."""
    user = FeedWorkload(environment)
    user.drives_plan = True
    user.on_start()
    user.run_plan()


@events.quitting.add_listener
def close_files(**_: Any) -> None:
    for f in (_history, _ledger, _changes, _arrivals, _observations, _actions, _streams, _signals):
        f.close()


class Counts:
    """This process's arrival accounting, flushed once a second."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.due = self.sent = self.dropped = self.late = 0
        self.max_lag_s = 0.0

    def flush(self, process: str, in_flight: int) -> None:
        _arrivals.write(ArrivalSample(t=time.time(), process=process, due=self.due, sent=self.sent,
                                      dropped=self.dropped, late=self.late, max_lag_ms=self.max_lag_s * 1000,
                                      in_flight=in_flight))
        self.reset()


class Answer(NamedTuple):
    status_code: int   # 0: no answer (connection refused, reset, timed out)
    content: bytes
    sent_t: float      # when the request left
    t: float           # when the answer (or the error) came


def observation(answer: Answer, body: dict[str, Any], user: int, op: str, **where: Any) -> Observation:
    """What a read that answered 200 served, item by item (see records.Observation)."""
    items = body.get("tweets") or []
    return Observation(
        sent_t=answer.sent_t, t=answer.t, user=user, op=op, ids=[str(i["tweet_id"]) for i in items],
        authors=[int((i.get("author") or {}).get("user_id") or i.get("author_id") or 0) for i in items],
        originals=[str(i["retweet_of"]["tweet_id"]) if i.get("retweet_of") else None for i in items],
        likes=[int((i.get("engagement") or {}).get("likes") or 0) for i in items],
        has_more=body.get("has_more"), **where)


class FeedWorkload(User):
    """Requests go through geventhttpclient's pooled HTTPClient, the library under Locust's
    FastHttpUser, without FastHttpUser's session on top: feedlab records every request itself
    (history.jsonl, read into HDR histograms), so Locust's per-request events and statistics,
    cookie jar and redirect handling would be duplicate work. At 4,000 arrivals/s they took the
    process from 0.40 to 0.72 cores (bench.generator)."""

    wait_time = constant(0)
    drives_plan = True           # False for the users Locust spawns on a distributed run's generator
    concurrency = 200            # pooled connections of this process
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        if not self.drives_plan:
            return
        if GENERATOR is not None:   # a distributed run's generator: set up by the master
            self.host = GENERATOR.host   # the load URL it checked, whatever Locust's spawn message said
        if not self.host:
            raise ValueError("no target: run Locust with --host (the harness always passes it)")
        self.http = HTTPClient.from_url(self.host, concurrency=self.concurrency, network_timeout=self.network_timeout,
                                        connection_timeout=self.connection_timeout)
        # A client that gives up at once: a post whose answer never arrives, as after a timeout
        self.impatient = HTTPClient.from_url(self.host, concurrency=10, network_timeout=IMPATIENT_S,
                                             connection_timeout=self.connection_timeout)
        # this process's share of the plan: Locust's worker index, or the one the master gave
        index = GENERATOR.share if GENERATOR is not None else int(getattr(self.environment.runner, "worker_index",
                                                                          0) or 0)
        self.index = index
        self.process = GENERATOR.name if GENERATOR is not None else f"locust-{index}"
        self.rng = random.Random(SEED * 7919 + index)
        self.ranks = list(range(1, USERS + 1))
        random.Random(SEED).shuffle(self.ranks)   # the same popular users in every process
        self.cum = list(itertools.accumulate(1.0 / (i + 1) ** 0.6 for i in range(USERS)))
        # (item id, the tweet it shows: a retweet's original) of items seen in feeds
        self.seen: collections.deque[tuple[str, str]] = collections.deque(maxlen=SEEN_TWEETS)
        self.seen_large: collections.deque[int] = collections.deque(maxlen=SEEN_TWEETS)   # large accounts seen tweeting
        self.newest: dict[int, str] = {}
        self.followed: list[tuple[int, int]] = []
        # large follows whose backfill is being watched: never unfollowed until the watch ends
        # (an unfollow 0.2 s after the follow left the never-backfill run one judged follow)
        self.watching: set[tuple[int, int]] = set()
        self.pushed_large_follows = 0   # follows of throttled-band accounts this process made
        self.last_page: dict[int, list[int]] = {}   # reader -> authors of the tweets on its last first page
        self.retweeted: list[tuple[int, str, str]] = []   # (user, original, retweet id) this process made
        # (author, tweet id, acknowledged at) of this process's own posts: what it may delete
        self.mine: collections.deque[tuple[int, str, float]] = collections.deque(maxlen=SEEN_TWEETS)
        self.rising_followers = set(SEEDED.followers_of(RISING)) | {RISING}   # who cannot follow it anew
        self.counts = Counts()
        self.pool = gevent.pool.Pool(MAX_IN_FLIGHT)
        self.listening = listeners(LISTENERS, SEED)[index::PROCESSES]

    def active_user(self) -> int:
        return self.ranks[self.rng.choices(range(USERS), cum_weights=self.cum)[0]]

    @task
    def run_plan(self) -> None:
        if not self.drives_plan:
            gevent.sleep(1.0)   # idle, and quick to stop
            return
        # a generator's start is the master's, once every generator was ready
        start = GENERATOR.load_start if GENERATOR is not None else LOAD_START or time.time()
        flusher = gevent.spawn(self._flush_every_second)
        streams = [gevent.spawn(self.listen, user) for user in self.listening]
        batch = BATCH_S if sum(PLAN.peak(op) for op in PLAN.ops) / PROCESSES >= BATCH_FROM else 0.0
        ops = {op: getattr(self, f"op_{op}") for op in PLAN.ops}
        phase: PhaseSpan | None = None
        # one plan, split exactly: every process draws it from the run's seed and takes its part
        for t, op in PLAN.arrivals(random.Random(SEED), part=self.index, parts=PROCESSES):
            due = start + t
            if phase is None or not phase.start_s <= t < phase.end_s:
                phase = PLAN.phase_at(t)
            wait = due - time.time()
            if wait > 0:
                gevent.sleep(wait + batch)
            lag = time.time() - due
            self.counts.due += 1
            self.counts.max_lag_s = max(self.counts.max_lag_s, lag)
            if lag > LATE_S:
                self.counts.late += 1
            if self.pool.full():
                self.counts.dropped += 1
                continue
            self.counts.sent += 1
            self.pool.spawn(ops[op], due, phase.name if phase else None)
        end = start + PLAN.duration_s
        if end > time.time():
            gevent.sleep(end - time.time())
        gevent.killall(streams)   # each writes its last span as it goes
        self.pool.join(timeout=self.network_timeout + BACKFILL_WAIT_S + 1)
        flusher.kill()
        for writer in (_history, _observations):
            writer.flush()
        self.counts.flush(self.process, len(self.pool))
        if GENERATOR is not None:
            GENERATOR.done()
        while True:   # the plan is done; the harness stops Locust
            gevent.sleep(3600)

    def listen(self, user: int) -> None:
        """Hold `user`'s SSE stream open until killed, reconnecting after each end."""
        while True:
            client = HTTPClient.from_url(str(self.host), concurrency=1, network_timeout=STREAM_READ_S,
                                         connection_timeout=self.connection_timeout)
            opened, status, error = None, 0, None
            try:
                response = client.get("/v1/stream", headers=auth(user))
                status = response.status_code
                if status == 200:
                    opened = time.time()   # the API answers once the user's channel is subscribed
                    # SSE ends its lines with "\n": geventhttpclient's readline looks for "\r\n" unless told
                    lines = (line for line in iter(functools.partial(response.readline, b"\n"), b""))
                    for event in sseclient.SSEClient(lines).events():
                        if event.event == "tweet":
                            body = orjson.loads(event.data)
                            _signals.write(Signal(t=time.time(), user=user, tweet_id=str(body["tweet_id"]),
                                                  author_id=int(body["author_id"])))
                    error = "closed by the server"
                else:
                    error = f"HTTP {status}"
            except gevent.GreenletExit:
                error = None   # the load ended
                raise
            except Exception as exc:  # noqa: BLE001 - a broken stream is recorded, then retried
                error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                client.close()
                _streams.write(StreamSpan(user=user, opened_t=opened, closed_t=time.time(), status=status,
                                          error=error))
            gevent.sleep(STREAM_RETRY_S)

    def _flush_every_second(self) -> None:
        while True:
            gevent.sleep(1.0)
            _history.flush()
            _observations.flush()
            self.counts.flush(self.process, len(self.pool))

    def call(self, method: str, path: str, op: str, due: float, phase: str | None, *, user: int,
             body: dict[str, Any] | None = None, client: HTTPClient | None = None,
             target: str | None = None, abandoned: bool = False) -> Answer:
        """One request, recorded with its latency from the intended time `due`."""
        headers = auth(user) if body is None else {**auth(user), "Content-Type": "application/json"}
        status, content, error = 0, b"", None
        sent = time.time()
        try:
            response = (client or self.http).request(method, path, body=b"" if body is None else orjson.dumps(body),
                                                     headers=headers)
            try:
                content = response.read()
            finally:
                response.release()
            status = response.status_code
        except Exception as exc:  # noqa: BLE001 - no answer is a recorded outcome, not a crash
            error = f"{type(exc).__name__}: {exc}"[:200]
        end = time.time()
        if status >= 500:
            error = f"HTTP {status}"
        _history.write(Request(t=due, op=op, latency_ms=(end - due) * 1000, status=status, error=error,
                               service_ms=(end - sent) * 1000, phase=phase, user=user, target=target,
                               abandoned=abandoned))
        return Answer(status, content, sent, end)

    def read(self, path: str, op: str, due: float, phase: str | None, *, user: int,
             **where: Any) -> dict[str, Any] | None:
        """A GET of a page of tweets: the page, recorded as an observation, or None."""
        r = self.call("GET", path, op, due, phase, user=user)
        if r.status_code != 200:
            return None
        page: dict[str, Any] = orjson.loads(r.content)
        _observations.write(observation(r, page, user, op, **where))
        return page

    def _saw(self, user: int, tweets: list[dict[str, Any]]) -> None:
        if tweets:
            self.seen.extend((str(t["tweet_id"]), str(t["retweet_of"]["tweet_id"]) if t.get("retweet_of")
                              else str(t["tweet_id"])) for t in tweets)
            self.seen_large.extend(a for t in tweets if (a := int(t["author"]["user_id"])) in LARGE)
            self.newest[user] = max((t["tweet_id"] for t in tweets), key=int)

    def op_feed(self, due: float, phase: str | None) -> None:
        user = self.active_user()
        page = self.read("/v1/feed?limit=20", "feed", due, phase, user=user)
        if page is None:
            return
        self._saw(user, page["tweets"])
        self.last_page[user] = [int(t["author"]["user_id"]) for t in page["tweets"] if not t.get("retweet_of")]
        if page.get("next_cursor") and self.rng.random() < SECOND_PAGE_SHARE:
            self.read(f"/v1/feed?limit=20&cursor={page['next_cursor']}", "feed_page", time.time(), phase, user=user,
                      page=1)

    def op_ranked(self, due: float, phase: str | None) -> None:
        user = self.active_user()
        page = self.read("/v1/feed?algorithm=ranked&limit=20", "ranked", due, phase, user=user)
        if page is not None:
            self._saw(user, page["tweets"])

    def op_deep_feed(self, due: float, phase: str | None) -> None:
        """Walk a feed page after page (a cursor each) while tweets keep arriving."""
        user, walk = self.active_user(), uuid.uuid4().hex[:12]
        path = "/v1/feed?limit=20"
        for n in range(WALK_PAGES):
            page = self.read(path, "walk", due if n == 0 else time.time(), phase, user=user, walk=walk, page=n)
            if page is None or not page.get("next_cursor"):
                return
            path = f"/v1/feed?limit=20&cursor={page['next_cursor']}"

    def op_delta(self, due: float, phase: str | None) -> None:
        user = self.active_user()
        since = self.newest.get(user) or (self.seen[-1][0] if self.seen else "1")
        page = self.read(f"/v1/feed/delta?since={since}&limit=50", "delta", due, phase, user=user)
        if page is not None:
            self._saw(user, page["tweets"])

    def op_profile(self, due: float, phase: str | None) -> None:
        of = self.active_user()
        self.read(f"/v1/users/{of}/tweets?limit=20", "profile", due, phase, user=self.active_user(), of_user=of)

    def op_post(self, due: float, phase: str | None, author: int | None = None, op: str = "post",
                reply_to: tuple[str, str] | None = None) -> None:
        author = author or self.active_user()
        body: dict[str, Any] = {"text": f"load tweet {uuid.uuid4().hex[:12]} by {author}",
                                "idempotency_key": str(uuid.uuid4())}
        if reply_to is not None:
            body["reply_to_tweet_id"] = reply_to[0]
        target = None if reply_to is None else reply_to[1]
        r = self.call("POST", "/v1/tweets", op, due, phase, user=author, body=body, target=target)
        first_sent, retried = r.sent_t, r.status_code == 0
        if retried:   # no answer (cut, timed out): sent again with its key, as apps do
            r = self._send_again(op, phase, author, body, times=POST_RETRIES, target=target, until_answered=True)[-1]
        tweet_id = orjson.loads(r.content)["tweet_id"] if r.status_code == 201 else None
        if tweet_id is not None:
            _ledger.write(Ack(tweet_id=tweet_id, author_id=author, ack_t=r.t, source="load"))
            self.mine.append((author, tweet_id, r.t))
            if reply_to is not None:   # counted for the tweet it shows (a retweet's original)
                _actions.write(Action(t=r.t, kind="reply", user=author, tweet=reply_to[1], ids=[tweet_id]))
        if retried:   # held to one tweet by the duplicates check, like retry_post's
            _actions.write(Action(t=time.time(), kind="post_retry", user=author, ids=[tweet_id] if tweet_id else [],
                                  key=body["idempotency_key"], text=body["text"], sent_t=first_sent))

    def op_retry_post(self, due: float, phase: str | None) -> None:
        """A post whose first attempt gets no answer (its connection cut after sending, or a
        client that gives up at once), retried twice with the same idempotency key: every
        answer must name one tweet, and the author's tweets must hold it once."""
        author, key = self.active_user(), str(uuid.uuid4())
        body = {"text": f"retried {key[:13]} by {author}", "idempotency_key": key}
        first = time.time()
        if self.rng.random() < 0.5:
            self._send_and_cut("/v1/tweets", author, body)
        else:
            self.call("POST", "/v1/tweets", "retry_post", due, phase, user=author, body=body, client=self.impatient,
                      abandoned=True)
        answered = [orjson.loads(r.content)["tweet_id"]
                    for r in self._send_again("retry_post", phase, author, body, times=2) if r.status_code == 201]
        if answered:
            _ledger.write(Ack(tweet_id=answered[0], author_id=author, ack_t=time.time(), source="load"))
            _actions.write(Action(t=time.time(), kind="post_retry", user=author, ids=sorted(set(answered)), key=key,
                                  text=body["text"], sent_t=first))

    def _send_again(self, op: str, phase: str | None, author: int, body: dict[str, Any], *, times: int,
                    target: str | None = None, until_answered: bool = False) -> list[Answer]:
        """A post sent again with its idempotency key, `times` times (or until an answer that is
        neither none nor 409, if `until_answered`). A 409 says the attempt before is still in
        progress: the next one waits 0.5 s."""
        answers: list[Answer] = []
        while len(answers) < times:
            if answers and answers[-1].status_code == 409:
                gevent.sleep(0.5)
            answers.append(self.call("POST", "/v1/tweets", op, time.time(), phase, user=author, body=body,
                                     target=target))
            if until_answered and answers[-1].status_code not in (0, 409):
                break
        return answers

    def _send_and_cut(self, path: str, user: int, body: dict[str, Any]) -> None:
        """Send a whole request and close the connection before any answer: the client cannot
        tell whether it was applied (recorded as a request with no answer)."""
        payload = orjson.dumps(body)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.http.host}\r\nContent-Type: application/json\r\n"
                f"Authorization: {auth(user)['Authorization']}\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n").encode()
        sent = time.time()
        error = "cut by the client after sending"
        try:
            sock = gevent.socket.create_connection((self.http.host, self.http.port), timeout=self.connection_timeout)
            try:
                sock.sendall(head + payload)
            finally:
                sock.close()
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        _history.write(Request(t=sent, op="retry_post", latency_ms=(time.time() - sent) * 1000, status=0,
                               error=error, service_ms=None, phase=None, user=user, abandoned=True))

    def op_celebrity_post(self, due: float, phase: str | None) -> None:
        """Half by a pull-tier account (few, merged at read time), half by a throttled-band one."""
        authors = PULL_TIER if PULL_TIER and self.rng.random() < 0.5 else CELEBRITIES
        self.op_post(due, phase, author=self.rng.choice(authors), op="celebrity_post")

    def op_delete(self, due: float, phase: str | None) -> None:
        """An author deletes one of its tweets that followers have had time to receive."""
        ready = [m for m in self.mine if time.time() - m[2] >= DELETE_AFTER_S]
        if not ready:
            return
        retweeted = {original for _, original, _ in self.retweeted}
        # half the time one that was retweeted: its retweets must go with it
        passed_on = [m for m in ready if m[1] in retweeted]
        author, tweet_id, _ = pick = self.rng.choice(passed_on if passed_on and self.rng.random() < 0.5 else ready)
        self.mine.remove(pick)
        r = self.call("DELETE", f"/v1/tweets/{tweet_id}", "delete", due, phase, user=author, target=tweet_id)
        if r.status_code == 200:
            _actions.write(Action(t=r.t, kind="delete", user=author, tweet=tweet_id, sent_t=r.sent_t))

    def op_like(self, due: float, phase: str | None) -> None:
        if not self.seen:
            return   # nothing seen yet to like (counted as due and sent, not as a request)
        user, (item, shows) = self.active_user(), self.rng.choice(self.seen)
        r = self.call("POST", f"/v1/tweets/{item}/like", "like", due, phase, user=user, target=shows)
        if r.status_code == 200:
            _actions.write(Action(t=r.t, kind="like", user=user, tweet=orjson.loads(r.content)["tweet_id"]))

    def op_reply(self, due: float, phase: str | None) -> None:
        if self.seen:
            self.op_post(due, phase, op="reply", reply_to=self.rng.choice(self.seen))

    def op_retweet(self, due: float, phase: str | None) -> None:
        """A retweet of a tweet seen in a feed; one in RETWEET_AGAIN_SHARE is sent twice (a
        repeat must answer the same retweet)."""
        if not self.seen:
            return
        user, (item, shows) = self.active_user(), self.rng.choice(self.seen)
        for attempt in range(2 if self.rng.random() < RETWEET_AGAIN_SHARE else 1):
            r = self.call("POST", f"/v1/tweets/{item}/retweet", "retweet", due if attempt == 0 else time.time(),
                          phase, user=user, target=shows)
            if r.status_code != 200:
                return
            body = orjson.loads(r.content)
            _actions.write(Action(t=r.t, kind="retweet", user=user, tweet=body["tweet_id"], ids=[body["retweet_id"]]))
        self.retweeted.append((user, body["tweet_id"], body["retweet_id"]))

    def op_unretweet(self, due: float, phase: str | None) -> None:
        if not self.retweeted:
            return
        user, original, retweet_id = self.retweeted.pop(self.rng.randrange(len(self.retweeted)))
        r = self.call("DELETE", f"/v1/tweets/{original}/retweet", "unretweet", due, phase, user=user,
                      target=original)
        if r.status_code == 200:
            _actions.write(Action(t=r.t, kind="unretweet", user=user, tweet=original, ids=[retweet_id],
                                  sent_t=r.sent_t))

    def op_follow(self, due: float, phase: str | None) -> None:
        user, other = self.active_user(), self.active_user()
        if user == other:
            return
        r = self.call("POST", f"/v1/users/{other}/follow", "follow", due, phase, user=user, target=str(other))
        if r.status_code != 200:
            return
        # Every acknowledged follow is recorded, a seeded edge's too: op_unfollow may have dropped
        # it (it unfollows accounts the reader was served), and the follow puts it back.
        _changes.write(FollowChange(t=r.t, follower=user, followee=other, following=True))
        if not SEEDED.follows(user, other):
            self.followed.append((user, other))

    def op_follow_large(self, due: float, phase: str | None) -> None:
        """A follow of a throttled-band or pull-tier account: its newest tweets (read just
        before) must reach the new follower's feed (the backfill); the feed is read every
        second until they all have, or BACKFILL_WAIT_S passes."""
        user = self.active_user()
        # an account seen tweeting, so that there is something to backfill
        # Mostly a throttled-band one: a pull-tier account's tweets reach a new follower by the
        # read-time merge, so only a pushed account's follow shows whether the backfill ran.
        # Until this process has made one such follow, always one (the checker-power campaign's
        # never-backfill run judged two follows, both of pull-tier accounts, and passed).
        throttled = [a for a in self.seen_large if a not in PULL_TIER]
        if not self.pushed_large_follows:
            pool = throttled or THROTTLED_BAND
        else:
            pool = throttled if throttled and self.rng.random() < 0.75 else list(self.seen_large) or CELEBRITIES
        other = self.rng.choice(pool)
        if user == other or SEEDED.follows(user, other) or (user, other) in self.followed \
                or (user, other) in self.watching:
            return
        before = self.read(f"/v1/users/{other}/tweets?limit={BACKFILL_EXPECTED}", "profile", due, phase, user=user,
                           of_user=other)
        if before is None:
            return
        expected = [str(t["tweet_id"]) for t in before["tweets"]]
        r = self.call("POST", f"/v1/users/{other}/follow", "follow_large", time.time(), phase, user=user,
                      target=str(other))
        if r.status_code != 200:
            return
        self.pushed_large_follows += bool(expected) and other not in PULL_TIER
        _changes.write(FollowChange(t=r.t, follower=user, followee=other, following=True))
        _actions.write(Action(t=r.t, kind="follow_large", user=user, other=other, ids=expected, sent_t=r.sent_t))
        walk = f"backfill-{uuid.uuid4().hex[:12]}"
        deadline = r.t + BACKFILL_WAIT_S
        self.watching.add((user, other))
        try:
            for n in itertools.count():
                gevent.sleep(1.0)
                page = self.read("/v1/feed?limit=100", "backfill", time.time(), phase, user=user, walk=walk, page=n)
                if (page is not None and set(expected) <= {str(t["tweet_id"]) for t in page["tweets"]}) \
                        or time.time() > deadline:
                    return
        finally:
            self.watching.discard((user, other))
            self.followed.append((user, other))

    def op_rising_follow(self, due: float, phase: str | None) -> None:
        """A user who does not follow the rising account yet follows it. Never undone, so its
        follower count only grows (each load process keeps its own list; a repeat is a no-op)."""
        if len(self.rising_followers) >= USERS:
            return
        user = self.rng.randint(1, USERS)
        while user in self.rising_followers:
            user = self.rng.randint(1, USERS)
        r = self.call("POST", f"/v1/users/{RISING}/follow", "rising_follow", due, phase, user=user,
                      target=str(RISING))
        if r.status_code == 200:
            self.rising_followers.add(user)
            _changes.write(FollowChange(t=r.t, follower=user, followee=RISING, following=True))

    def op_rising_post(self, due: float, phase: str | None) -> None:
        self.op_post(due, phase, author=RISING, op="rising_post")

    def op_unfollow(self, due: float, phase: str | None) -> None:
        """Half the time a follow this process made; else an account whose tweet the reader was
        just served, whose feed is then read at once (the unfollowed account's tweets must be
        gone from it)."""
        seen = [(u, a) for u, authors in self.last_page.items() for a in authors
                if a != u and (u, a) not in self.watching]
        if self.followed and (not seen or self.rng.random() < 0.5):
            user, other = self.followed.pop(self.rng.randrange(len(self.followed)))
        elif seen:
            user, other = self.rng.choice(seen)
            self.last_page.pop(user, None)
        else:
            return
        r = self.call("DELETE", f"/v1/users/{other}/follow", "unfollow", due, phase, user=user, target=str(other))
        if r.status_code != 200:
            return
        _changes.write(FollowChange(t=r.t, follower=user, followee=other, following=False))
        self.read("/v1/feed?limit=20", "feed", time.time(), phase, user=user)
