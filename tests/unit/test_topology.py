"""The port block: every port of a stack distinct and inside [base, base + PORT_BLOCK)."""

from __future__ import annotations

import pytest

from harness.topology import MAX_BASE_PORT, PORT_BLOCK, Topology

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("base", [1024, 19000, 25000, MAX_BASE_PORT])
def test_ports_are_distinct_and_inside_the_block(base: int) -> None:
    ports = Topology(base_port=base, api_instances=4, fanout_workers=4).all_ports()
    assert len(ports) == len(set(ports))
    assert all(base <= p < base + PORT_BLOCK for p in ports)
    assert max(ports) < 32768   # below the kernel's default ephemeral range


def test_a_base_port_whose_block_reaches_the_ephemeral_range_is_refused() -> None:
    with pytest.raises(ValueError, match="base_port"):
        Topology(base_port=MAX_BASE_PORT + 1)
