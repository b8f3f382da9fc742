"""From a catalogue entry to a fault object on a running stack (any runtime that offers the
capabilities below: processes by name, the Redis cluster's roles, the links, the target's
runtime configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.catalogue import kind
from chaos.fault import Fault, Links, RedisClusterView, Runtime
from chaos.network import LinkDown, ToxicFault
from chaos.process import ProcessFault
from chaos.ranker import DegradeRanker, RuntimeConfig
from chaos.shard import ShardWipe


@dataclass(frozen=True)
class ChaosStack:
    runtime: Runtime
    cluster: RedisClusterView
    links: Links
    config: RuntimeConfig


def build(action: str, target: str, params: dict[str, Any], stack: ChaosStack) -> Fault:
    """The fault `action` on `target`; `params` as the catalogue gives them (defaults filled in)."""
    k = kind(action)
    problems = k.problems(target, params)
    if problems:
        raise ValueError("; ".join(f"{where}: {why}" for where, why in problems))
    p = k.with_defaults(params)
    if action == "wipe-shard":
        return ShardWipe(target, stack.runtime, stack.cluster)
    if k.family == "process":
        process_action = "kill" if action == "kill-redis-primary" else action
        return ProcessFault(process_action, target, stack.runtime, stack.cluster, name=action)
    if action in ("down", "partition"):
        return LinkDown(action, target, stack.links, stack.cluster)
    if k.family == "network":
        stream, toxicity = p.pop("stream"), p.pop("toxicity")
        return ToxicFault(action, target, stack.links, stack.cluster, stream=stream, toxicity=toxicity, **p)
    if action == "degrade-ranker":
        return DegradeRanker(stack.config, fail_share=p["fail_share"])
    raise ValueError(f"no builder for fault {action!r}")
