"""Load generators on several hosts: Locust's own distributed mode, with feedlab's records
carried by Locust's own messages (`feedlab run --generators N`, `feedlab generator`).

The harness starts a Locust master beside the run directory (FEEDLAB_ROLE=master) and the
generators it owns (`feedlab generator --master 127.0.0.1:PORT`, FEEDLAB_ROLE=generator);
other generators join the same way from elsewhere. A generator has no run directory: on
joining, the master sends it everything it needs ("feedlab-setup": the load URL, the arrival
plan, the seeded graph, a token per user, the seed, how many generators share the plan); it
checks the load URL is one it may send load to (loopback, or a host its own `--allow-host`
names), and answers "feedlab-ready". Once every expected generator is ready the master picks
the load's start and sends it ("feedlab-start"). While the load runs, each generator sends its
records (history, ledger, arrivals, observations, actions, streams, signals, follow changes
and its own CPU) to the master every half second ("feedlab-records"), and "feedlab-done" after
its last ones; the master appends them to the run directory. Locust delivers a generator's
messages in order over one connection, so "done" comes after all of that generator's records.

What the master saw of each generator (joined, its clock, start, done, lost, refused, late) goes to
generators.jsonl: a generator that stops sending heartbeats, or quits, before it is done is
"lost", and the `generator` check makes such a run invalid (its share of the arrivals was not
offered). The token secret never leaves the master: generators get one token per user, valid
for the run. The channel is Locust's (ZeroMQ, not encrypted); the master listens on 127.0.0.1.
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import gevent
import gevent.event
import orjson
import psutil

from records import (
    ACTIONS,
    ARRIVALS,
    GENERATOR,
    GENERATORS,
    GRAPH,
    GRAPH_CHANGES,
    GRAPH_EDGES,
    HISTORY,
    LEDGER,
    OBSERVATIONS,
    SIGNALS,
    STREAMS,
    WORKLOAD,
    GeneratorEvent,
    GeneratorSample,
    JsonlWriter,
)

ROLE = os.environ.get("FEEDLAB_ROLE", "local")   # local (one host, Locust's --processes), master, generator
# The files a generator may append to in the master's run directory, and nothing else.
SHIPPED = frozenset({HISTORY, LEDGER, GRAPH_CHANGES, ARRIVALS, OBSERVATIONS, ACTIONS, STREAMS, SIGNALS, GENERATOR})
SHIP_EVERY_S = 0.5
START_DELAY_S = 2.0     # from the last generator's "ready" to the first arrival
TOKEN_MARGIN_S = 3600.0  # generators' tokens outlive the planned load by this much
MISSING = "missing"     # Locust's WorkerNode state once 3 heartbeats did not come


class Shipper:
    """A generator's records, by file, waiting to go to the master."""

    def __init__(self) -> None:
        self.pending: dict[str, list[bytes]] = {}
        self.send: Callable[[str, dict[str, Any]], None] | None = None   # the worker runner's send_message

    def add(self, name: str, line: bytes) -> None:
        self.pending.setdefault(name, []).append(line)

    def ship(self) -> None:
        if self.send is None:
            return
        pending, self.pending = self.pending, {}
        for name, lines in pending.items():
            if lines:
                self.send("feedlab-records", {"file": name, "data": b"".join(lines)})


SHIPPER = Shipper()


class ShippedWriter:
    """JsonlWriter's interface for a generator: each record goes to the master, not to a file."""

    def __init__(self, name: str, shipper: Shipper = SHIPPER) -> None:
        if name not in SHIPPED:
            raise ValueError(f"{name} is not a file generators send")
        self.name = name
        self.shipper = shipper

    def write(self, record: Any) -> None:
        self.shipper.add(self.name, orjson.dumps(record) + b"\n")

    def flush(self) -> None:
        self.shipper.ship()

    def close(self) -> None:
        self.shipper.ship()


def writer(run_dir: Path, name: str, *, buffered: bool = False) -> JsonlWriter | ShippedWriter:
    """Where a load process writes one of its record files: the run directory, or (a
    generator) the master."""
    return ShippedWriter(name) if ROLE == "generator" else JsonlWriter(run_dir / name, buffered=buffered)


class Master:
    """The master's side: admits generators that know the run's join key, sends each its setup
    once, gives each a share of the plan (0..N-1, in the order they became ready) and the
    start, appends the records they send to the run directory, and records what became of each
    generator (generators.jsonl)."""

    def __init__(self, runner: Any, run_dir: Path, *, expected: int, join_key: str,
                 setup: dict[str, Any]) -> None:
        self.runner = runner
        self.run_dir = run_dir
        self.expected = expected
        self.join_key = join_key
        self.setup = setup
        self.events = JsonlWriter(run_dir / GENERATORS)
        self.files: dict[str, IO[bytes]] = {}
        self.admitted: dict[str, str] = {}   # client id -> who, once it gave the join key (and got the setup)
        self.names: dict[str, str] = {}      # client id -> generator-<share>, once ready
        self.done: set[str] = set()
        self.lost: set[str] = set()
        for kind, listener in (("feedlab-hello", self._hello), ("feedlab-ready", self._ready),
                               ("feedlab-records", self._records), ("feedlab-done", self._done),
                               ("feedlab-refused", self._refused), ("feedlab-clock", self._clock),
                               ("feedlab-failed", self._failed)):
            runner.register_message(kind, listener)
        # The files stay open until the process ends (flushed after each write: nothing waits in
        # memory), so the generators' last records, sent as Locust's quit reaches them, still land.
        self.quitting = False   # the harness is stopping the load: generators leaving now are not lost
        runner.environment.events.quitting.add_listener(self._quitting)
        gevent.spawn(self._watch)

    def _quitting(self, **_: Any) -> None:
        self.quitting = True

    def _event(self, generator: str, event: str, detail: str = "", load_start_t: float | None = None) -> None:
        self.events.write(GeneratorEvent(t=time.time(), generator=generator, event=event, detail=detail,
                                         load_start_t=load_start_t))

    def _hello(self, msg: Any, **_: Any) -> None:
        """A generator asks to join (once its message handlers are in place): with the join
        key it gets the setup, once; without, it is sent away."""
        client, data = msg.node_id, msg.data or {}
        if client in self.admitted:
            return
        who = f"the generator on {data.get('host', '?')} (pid {data.get('pid', '?')})"
        away = None
        if not hmac.compare_digest(str(data.get("key", "")), self.join_key):
            away = ("turned-away", "it did not have this run's join key")
        elif len(self.admitted) >= self.expected:   # the ready ones are admitted too: this covers after the start
            away = ("late", f"the run had its {self.expected} generator(s)")
        if away is not None:
            # Not Locust's "quit": a headless master whose last worker quits quits itself
            self._event(who, *away)
            self.runner.send_message("feedlab-away", {"reason": away[1]}, client_id=client)
            return
        self.admitted[client] = who
        self.runner.send_message("feedlab-setup", self.setup, client_id=client)

    def _ready(self, msg: Any, **_: Any) -> None:
        client, data = msg.node_id, msg.data or {}
        if client not in self.admitted or client in self.names:
            return   # not admitted, or a repeat
        name = self.names[client] = f"generator-{len(self.names)}"
        self._event(name, "joined", f"{data.get('host', '?')} pid {data.get('pid', '?')}")
        self.runner.send_message("feedlab-clock", {"t0": time.time()}, client_id=client)
        if self.started:
            load_start = time.time() + START_DELAY_S
            for share, c in enumerate(self.names):
                self.runner.send_message("feedlab-start", {"load_start": load_start, "share": share},
                                         client_id=c)
            self._event("master", "start", f"{self.expected} generator(s) ready", load_start_t=load_start)

    @property
    def started(self) -> bool:
        """Every expected generator is ready (so the start went out): the ready ones only grow."""
        return len(self.names) >= self.expected

    def _clock(self, msg: Any, **_: Any) -> None:
        """The generator's clock against the master's (Cristian's): its time when it answered,
        against the middle of the round trip."""
        t1, data = time.time(), msg.data
        if msg.node_id in self.names:
            rtt = t1 - data["t0"]
            offset = data["t"] - (data["t0"] + t1) / 2
            self.events.write(GeneratorEvent(t=t1, generator=self.names[msg.node_id], event="clock",
                                             detail=f"{offset * 1000:+.1f} ms ± {rtt * 500:.1f} ms from the master's",
                                             clock_offset_s=offset, clock_error_s=rtt / 2))

    def _records(self, msg: Any, **_: Any) -> None:
        name = (msg.data or {}).get("file")
        if msg.node_id not in self.names or name not in SHIPPED:
            return   # only a joined generator's records, and only to the files generators write
        fh = self.files.get(name)
        if fh is None:
            fh = self.files[name] = open(self.run_dir / name, "ab")  # noqa: SIM115 - open to the end
        fh.write(msg.data["data"])   # whole lines; buffered, so a short write is finished, and flushed at once
        fh.flush()

    def _done(self, msg: Any, **_: Any) -> None:
        if msg.node_id in self.names and msg.node_id not in self.done | self.lost:
            self.done.add(msg.node_id)
            self._event(self.names[msg.node_id], "done")

    def _failed(self, msg: Any, **_: Any) -> None:
        if msg.node_id in self.names and msg.node_id not in self.done | self.lost:
            self.lost.add(msg.node_id)
            self._event(self.names[msg.node_id], "lost", f"its plan failed: {(msg.data or {}).get('reason', '')}")

    def _refused(self, msg: Any, **_: Any) -> None:
        if msg.node_id in self.admitted:
            self._event(self.names.get(msg.node_id, self.admitted[msg.node_id]), "refused",
                        str((msg.data or {}).get("reason", "")))

    def _watch(self) -> None:
        """Once a second: a joined generator that is not done and has gone missing (Locust
        counts 3 heartbeats missed) or left is lost; an admitted one gone before it was ready
        frees its place."""
        while not self.quitting:   # as Locust quits, every generator leaves
            gevent.sleep(1.0)
            if self.quitting:
                return
            for client, who in list(self.admitted.items()):   # gone before it was ready: its place opens again
                node = self.runner.clients.get(client)
                if client not in self.names and not self.started and (node is None or node.state == MISSING):
                    del self.admitted[client]
                    self._event(who, "left", "it went before it was ready; another generator may take its place")
            for client, name in list(self.names.items()):
                if client in self.done or client in self.lost:
                    continue
                node = self.runner.clients.get(client)
                if node is None or node.state == MISSING:
                    self.lost.add(client)
                    self._event(name, "lost", "no heartbeat for 3 s" if node is not None
                                else "it left the run before it was done")


class Generator:
    """A generator's side: asks to join, takes its setup (after checking where the load would
    go), waits for its share and the start, runs the plan (`drive`, once, in a greenlet of its
    own: Locust moves its users between workers when one joins or leaves, and a plan must not
    start twice or stop half-way for that), and sends its records to the master."""

    def __init__(self, runner: Any, configure: Callable[[Path, dict[str, Any]], None],
                 drive: Callable[[], None]) -> None:
        self.runner = runner
        self.configure = configure
        self.drive = drive
        self.ready = gevent.event.Event()
        self.load_start = 0.0
        self.share = 0
        self.name = "generator"
        self.host = ""   # the load URL, checked and pinned
        allow = os.environ.get("FEEDLAB_ALLOW_HOSTS", "")
        self.allow_hosts = [h for h in allow.split(",") if h]
        for kind, listener in (("feedlab-setup", self._setup), ("feedlab-start", self._start),
                               ("feedlab-clock", self._clock), ("feedlab-away", self._away)):
            runner.register_message(kind, listener)
        # on Locust's quit too: test_stopping comes first (test_stop only once its users stopped,
        # and the master waits 0.5 s after telling its generators to quit)
        runner.environment.events.test_stopping.add_listener(lambda **_: SHIPPER.ship())
        SHIPPER.send = runner.send_message
        # asked for only now, with the handlers above in place (a setup sent on connect could
        # come before them, and Locust drops a message nobody handles)
        runner.send_message("feedlab-hello", {"key": os.environ.get("FEEDLAB_JOIN_KEY", ""),
                                              "host": socket.gethostname(), "pid": os.getpid()})

    def _setup(self, msg: Any, **_: Any) -> None:
        from harness.safety import UnsafeTarget, check_target  # the one safety rule, shared with the harness

        if self.ready.is_set():
            return
        data = msg.data
        try:
            self.host = check_target(data["host"], self.allow_hosts, flag="the run's load URL").url
        except UnsafeTarget as exc:
            self.runner.send_message("feedlab-refused", {"reason": str(exc)})
            self._leave(f"refused the run: {exc}")
            return
        folder = Path(tempfile.mkdtemp(prefix="feedlab-generator-"))
        try:
            (folder / WORKLOAD).write_text(data["plan"])
            (folder / GRAPH).write_text(data["graph"])
            (folder / GRAPH_EDGES).write_bytes(data["edges"])
            self.configure(folder, data)   # the graph's edges stay mapped once their file is gone
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.ready.set()
        self.runner.send_message("feedlab-ready", {"host": socket.gethostname(), "pid": os.getpid()})
        gevent.spawn(self._ship_every)

    def _clock(self, msg: Any, **_: Any) -> None:
        self.runner.send_message("feedlab-clock", {"t0": msg.data["t0"], "t": time.time()})

    def _away(self, msg: Any, **_: Any) -> None:
        self._leave(f"the master sent this generator away: {(msg.data or {}).get('reason', '')}")

    @staticmethod
    def _leave(why: str) -> None:
        """Exit without Locust's goodbye (its "quit" can make the master quit too); the master
        sees the heartbeats stop."""
        logging.getLogger("feedlab.generator").error(why)
        gevent.spawn_later(0.5, os._exit, 3)

    def _start(self, msg: Any, **_: Any) -> None:
        if self.load_start:
            return
        self.load_start = float(msg.data["load_start"])
        self.share = int(msg.data["share"])
        self.name = f"generator-{self.share}"
        gevent.spawn(self._cpu_every_second)
        gevent.spawn(self._drive)

    def _drive(self) -> None:
        try:
            self.drive()
        except Exception as exc:
            SHIPPER.ship()
            self.runner.send_message("feedlab-failed", {"reason": f"{type(exc).__name__}: {exc}"[:300]})
            raise

    def _ship_every(self) -> None:
        while True:
            gevent.sleep(SHIP_EVERY_S)
            SHIPPER.ship()

    def _cpu_every_second(self) -> None:
        """This process's CPU, as the harness samples its own load processes'."""
        me = psutil.Process()
        me.cpu_percent(None)
        while True:
            gevent.sleep(1.0)
            SHIPPER.add(GENERATOR, orjson.dumps(GeneratorSample(t=time.time(), process=self.name,
                                                                cpu_percent=me.cpu_percent(None))) + b"\n")

    def done(self) -> None:
        """The last records, then "done" (delivered after them: one connection, in order)."""
        SHIPPER.ship()
        self.runner.send_message("feedlab-done", {})


def setup_message(run_dir: Path, *, host: str, tokens: dict[str, str], seed: int, parts: int,
                  listeners: int) -> dict[str, Any]:
    """What the master sends each generator: enough to act as one load process of this run."""
    return {"host": host, "plan": (run_dir / WORKLOAD).read_text(), "graph": (run_dir / GRAPH).read_text(),
            "edges": (run_dir / GRAPH_EDGES).read_bytes(), "tokens": tokens, "seed": seed, "parts": parts,
            "listeners": listeners}
