"""One Apache Cassandra 5.0 node, from the Maven Central jars, on JDK 17.

Clients reach it only through its Toxiproxy listener (the driver uses one port for every host,
so a single node stays behind the proxy). The schema of the design's §07 is created once the
node answers CQL.
"""

from __future__ import annotations

import yaml

from harness.runtime import java
from harness.runtime.component import Component, port_open
from harness.runtime.process import ComponentError, ProcessSpec, wait_until

# From Cassandra 5.0's conf/jvm17-server.options: without these the JVM refuses to start.
JDK17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *[f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
        "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql",
        "java.base/java.lang.ref", "jdk.unsupported/sun.misc", "jdk.compiler/com.sun.tools.javac.file",
        "jdk.attach/sun.tools.attach", "java.management/com.sun.jmx.remote.security")],
    *[f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
        "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect",
        "jdk.compiler/com.sun.tools.javac", "java.base/java.lang", "java.base/java.util",
        "java.base/java.nio")],
    "-Dio.netty.tryReflectionSetAccessible=true",
]


class Cassandra(Component):
    role = "cassandra"
    name = "cassandra"

    def prepare(self) -> None:
        data = self.ctx.data(self.name)
        conf = data / "conf"
        conf.mkdir(exist_ok=True)
        settings = {
            "cluster_name": "feedlab",
            "num_tokens": 1,
            "initial_token": 0,
            "auto_bootstrap": False,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "endpoint_snitch": "SimpleSnitch",
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "seed_provider": [{"class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                               "parameters": [{"seeds": f"127.0.0.1:{self.topo.cassandra_storage_port}"}]}],
            "listen_address": "127.0.0.1",
            "rpc_address": "127.0.0.1",
            "storage_port": self.topo.cassandra_storage_port,
            "native_transport_port": self.topo.cassandra_port,
            "data_file_directories": [str(data / "data")],
            "commitlog_directory": str(data / "commitlog"),
            "saved_caches_directory": str(data / "saved_caches"),
            "hints_directory": str(data / "hints"),
            "cdc_raw_directory": str(data / "cdc_raw"),
            "start_native_transport": True,
            # Small machine: fewer threads and smaller buffers than a server's defaults.
            "concurrent_reads": 8,
            "concurrent_writes": 16,
            "concurrent_counter_writes": 8,
            "concurrent_compactors": 1,
            "memtable_heap_space": "128MiB",
            "memtable_offheap_space": "128MiB",
            "key_cache_size": "32MiB",
            "read_request_timeout": "5000ms",
            "write_request_timeout": "2000ms",
            "authenticator": "AllowAllAuthenticator",
            "authorizer": "AllowAllAuthorizer",
            "dynamic_snitch": False,
            # A new single-node cluster, never upgraded: write (and accept for `nodetool import`)
            # SSTables in 5.0's own format, which is what CQLSSTableWriter produces.
            "storage_compatibility_mode": "NONE",
        }
        (conf / "cassandra.yaml").write_text(yaml.safe_dump(settings))
        lay = self.ctx.layout
        classpath = f"{conf}:{lay.conf}:{lay.cassandra_jars}/*"
        argv = [
            lay.java, "-Xms768m", "-Xmx768m", "-Xss256k", "-XX:+UseG1GC", *java.BROKER_JIT,
            "-XX:MaxDirectMemorySize=256m", "-XX:+HeapDumpOnOutOfMemoryError", "-XX:HeapDumpPath=/dev/null",
            f"-javaagent:{lay.jamm()}",
            *lay.jmx_agent(self.topo.cassandra_jmx_exporter_port),
            *JDK17_FLAGS,
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={data}",
            f"-Dcassandra.logdir={data / 'logs'}",
            f"-Dlogback.configurationFile={lay.conf / 'cassandra-logback.xml'}",
            f"-Dcassandra.jmx.local.port={self.topo.cassandra_jmx_port}",
            "-Djava.net.preferIPv4Stack=true",
            # Single node: no gossip to settle, no ring to wait for (start ~50 s -> ~15 s).
            "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.load_ring_state=false",
            "-Dcassandra.ring_delay_ms=100", "-Dcassandra.superuser_setup_delay_ms=100",
            # nor peers to tell it is shutting down: a graceful stop waited 4 s for them.
            "-Dcassandra.shutdown_announce_in_ms=0",
            "-cp", classpath, "org.apache.cassandra.service.CassandraDaemon",
        ]
        self.procs = {self.name: self.ctx.spawn(ProcessSpec(self.name, argv, self.ctx.log(self.name), cwd=data,
                                                            image="cassandra"))}

    def wait_ready(self, deadline_s: float) -> None:
        proc = self.procs[self.name]
        wait_until(lambda: port_open(self.topo.cassandra_port), deadline_s=deadline_s, proc=proc,
                   what="accepting CQL connections", interval=0.5)

    def create_schema(self) -> None:
        """Apply targets/feed/schema.cql (idempotent) through the proxy, as any client would."""
        from targets.feed.store import apply_schema

        try:
            apply_schema(f"127.0.0.1:{self.topo.cassandra_proxy_port}")
        except Exception as exc:  # noqa: BLE001 - reported with the component's name
            raise ComponentError(self.name, f"schema creation failed: {exc}", self.procs[self.name].spec.log) from exc
