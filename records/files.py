"""The files of a run directory, by name (README, "The run directory", says what each holds)."""

# File names inside a run directory.
MANIFEST = "manifest.json"
HISTORY = "history.jsonl"          # one Request per client request (Locust)
LEDGER = "ledger.jsonl"            # one Ack per acknowledged POST /v1/tweets
PROBES = "probes.jsonl"            # one ProbeRecord per (canary, follower)
FAULTS = "faults.jsonl"            # one FaultWindow per chaos action
FINAL_READS = "final_reads.jsonl"  # one FinalRead per user read back after settle
GENERATOR = "generator.jsonl"      # one GeneratorSample per second per load process
CONTAINERS = "containers.jsonl"    # one ContainerSample per second per container (--runtime docker)
GENERATORS = "generators.jsonl"    # one GeneratorEvent per join, start, finish or loss of a generator (--generators)
MACHINE = "machine.jsonl"          # one MachineSample per second: the machine's CPU, steal included
ARRIVALS = "arrivals.jsonl"        # one ArrivalSample per second per load process
GRAPH_CHANGES = "graph_changes.jsonl"  # one FollowChange per follow/unfollow the workload made
OBSERVATIONS = "observations.jsonl"    # one Observation per read that answered: what it served
ACTIONS = "actions.jsonl"          # one Action per acknowledged change the checks hold the target to
STREAMS = "streams.jsonl"          # one StreamSpan per SSE connection a listener held (GET /v1/stream)
SIGNALS = "signals.jsonl"          # one Signal per new-tweet event a listener received on it
WORKLOAD = "workload.json"         # the arrival plan: the scenario's phases and rates
TARGET_METRICS = "target_metrics.json"  # the target's Prometheus series over the run
SWEEP = "sweep.json"               # the heal sweep after the last fault (chaos/sweep.py)
GRAPH = "graph.json"               # the seeded social graph's shape and thresholds (workloads/graph.py)
GRAPH_EDGES = "graph.edges"        # its follow edges, binary (workloads/graph.py explains the layout)
SUMMARY = "summary.json"
JUNIT = "junit.xml"
REPORT = "report.html"
