"""Tweet events to Kafka, awaited: a POST is acknowledged only once Kafka has the event."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from targets.feed.outage import QueueUnavailable

TOPIC = "tweets"
# How long a request waits for the broker's acknowledgement before it answers 503: under the
# API's request deadline (app.REQUEST_DEADLINE_S), so a post during a broker outage is a clear
# "queue unavailable", not a generic deadline. The event may still be delivered later (the
# producer keeps it for message.timeout.ms): a client retries with its idempotency key.
PUBLISH_WAIT_S = 2.0


class EventProducer:
    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 2, "message.timeout.ms": 10000,
        })
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        # poll() returns as soon as a delivery report is served; the timeout only bounds how
        # often an idle producer wakes (and takes the GIL from the event loop).
        while not self._stop.is_set():
            self.producer.poll(0.5)

    async def publish(self, key: int, event: dict[str, Any]) -> None:
        """A tweet-path event (tweet, delete, backfill), keyed by author so they stay in order."""
        await self.publish_to(TOPIC, key, event)

    async def publish_to(self, topic: str, key: int, event: dict[str, Any]) -> None:
        """Produce and wait for the broker's acknowledgement (QueueUnavailable if it does not come)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(QueueUnavailable(f"kafka: {err}"))
            loop.call_soon_threadsafe(settle)

        try:
            self.producer.produce(topic, key=str(key).encode(), value=orjson.dumps(event), on_delivery=delivered)
        except (BufferError, KafkaException) as exc:   # the local queue is full: the broker has been away
            raise QueueUnavailable(f"kafka: {exc}") from exc
        try:
            await asyncio.wait_for(fut, PUBLISH_WAIT_S)
        except TimeoutError:
            raise QueueUnavailable(f"kafka: no acknowledgement within {PUBLISH_WAIT_S:g} s") from None

    def close(self) -> None:
        self.producer.flush(5)
        self._stop.set()
