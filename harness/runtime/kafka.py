"""One Apache Kafka broker in KRaft mode (broker and controller in one process).

Two listeners: CLIENT advertises the Toxiproxy port, so producers and consumers reach the broker
only through the proxy; INTERNAL (the broker talking to itself) stays direct, so a network fault
injected on the client link does not also cut the broker off from itself.
"""

from __future__ import annotations

import subprocess
import uuid

from harness.runtime import java
from harness.runtime.component import Component, Layout, host_layout, port_open
from harness.runtime.process import ComponentError, ProcessSpec, wait_until
from harness.topology import (
    CLIENT_ROLES,
    ENGAGEMENT_TOPIC,
    KAFKA_SESSION_TIMEOUT_MS,
    RETRY_TOPIC,
    THROTTLED_TOPIC,
    TWEETS_PARTITIONS,
    TWEETS_TOPIC,
)

EVENT_TOPICS = (TWEETS_TOPIC, THROTTLED_TOPIC, ENGAGEMENT_TOPIC, RETRY_TOPIC)


class Kafka(Component):
    role = "kafka"
    name = "kafka"

    def prepare(self) -> None:
        data = self.ctx.data(self.name)
        t = self.topo
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{t.kafka_controller_port}",
            # A listener per client role too, each advertised as that role's proxy: a client
            # learns the broker's address from the listener it came in on, so the API's and the
            # workers' connections stay on their own links (topology.CLIENT_ROLES).
            "listeners": ",".join([f"CLIENT://127.0.0.1:{t.kafka_port}", f"INTERNAL://127.0.0.1:{t.kafka_internal_port}",
                                   f"CONTROLLER://127.0.0.1:{t.kafka_controller_port}"]
                                  + [f"{r.upper()}://127.0.0.1:{t.kafka_listener_port(r)}" for r in CLIENT_ROLES]),
            "advertised.listeners": ",".join(
                [f"CLIENT://127.0.0.1:{t.kafka_proxy_port}", f"INTERNAL://127.0.0.1:{t.kafka_internal_port}"]
                + [f"{r.upper()}://127.0.0.1:{t.kafka_link_port(r)}" for r in CLIENT_ROLES]),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT", "CLIENT:PLAINTEXT", "INTERNAL:PLAINTEXT"]
                + [f"{r.upper()}:PLAINTEXT" for r in CLIENT_ROLES]),
            "log.dirs": str(data / "log"),
            "num.partitions": str(TWEETS_PARTITIONS),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Let workers use a short session timeout (topology.KAFKA_SESSION_TIMEOUT_MS).
            "group.min.session.timeout.ms": str(min(6000, KAFKA_SESSION_TIMEOUT_MS)),
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        conf = data / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self._conf = conf
        self._data = data
        lay = self.ctx.layout
        argv = [
            lay.java, "-Xms384m", "-Xmx384m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", *java.BROKER_JIT,
            "-Djava.awt.headless=true", *lay.jmx_agent(t.kafka_jmx_exporter_port),
            f"-Dlog4j.configuration=file:{lay.conf / 'kafka-log4j.properties'}",
            f"-Dkafka.logs.dir={data / 'logs'}",
            "-cp", f"{lay.kafka_jars}/*", "kafka.Kafka", str(conf),
        ]
        self.procs = {self.name: self.ctx.spawn(ProcessSpec(self.name, argv, self.ctx.log(self.name), cwd=data,
                                                            image="kafka"))}

    def start(self) -> None:
        if not (self._data / "log" / "meta.properties").exists():
            self._format()
        super().start()

    def format_argv(self, lay: Layout, cluster_id: str) -> list[str]:
        """The KRaft storage format tool for this broker's configuration, with `lay`'s programs."""
        return [lay.java, "-Xmx256m", f"-Dlog4j.configuration=file:{lay.conf / 'kafka-log4j.properties'}",
                "-cp", f"{lay.kafka_jars}/*", "kafka.tools.StorageTool", "format", "-t", cluster_id,
                "-c", str(self._conf), "-g"]

    def topic_argvs(self, lay: Layout) -> list[list[str]]:
        """Kafka's own topic tool, creating each event topic through the proxy unless it exists
        (create_topics does the same with the Python admin client)."""
        return [[lay.java, "-Xmx256m", f"-Dlog4j.configuration=file:{lay.conf / 'kafka-log4j.properties'}",
                 "-cp", f"{lay.kafka_jars}/*", "org.apache.kafka.tools.TopicCommand",
                 "--bootstrap-server", f"127.0.0.1:{self.topo.kafka_proxy_port}", "--create", "--if-not-exists",
                 "--topic", topic, "--partitions", str(TWEETS_PARTITIONS), "--replication-factor", "1"]
                for topic in EVENT_TOPICS]

    def _format(self) -> None:
        """Format the KRaft storage once (a restarted broker keeps its log); a tool run here, on
        the broker's own data folder, whichever runtime the broker runs in."""
        java.jars("kafka")   # missing: "run bin/setup", not a JVM's "could not find main class"
        argv = self.format_argv(host_layout(), str(uuid.uuid4()))
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise ComponentError(self.name, f"storage format failed: {(out.stderr or out.stdout)[-400:]}")

    def wait_ready(self, deadline_s: float) -> None:
        wait_until(lambda: port_open(self.topo.kafka_port), deadline_s=deadline_s, proc=self.procs[self.name],
                   what="listening", interval=0.5)

    def create_topics(self, deadline_s: float = 60) -> None:
        """Create the event topics (partitioned by author id) through the proxy; idempotent."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.topo.kafka_proxy_port}"})

        wanted = EVENT_TOPICS

        def created() -> bool:
            existing = admin.list_topics(timeout=5).topics
            missing = [t for t in wanted if t not in existing]
            if not missing:
                return True
            futures = admin.create_topics([NewTopic(t, TWEETS_PARTITIONS, 1) for t in missing], request_timeout=10)
            for fut in futures.values():
                try:
                    fut.result(timeout=15)
                except Exception as exc:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS is success
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
            return True

        wait_until(created, deadline_s=deadline_s, proc=self.procs[self.name], what=f"topics {wanted} created")
