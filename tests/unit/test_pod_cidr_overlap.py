"""kubenorn.networks: pod ranges checked for overlap by bisection, as a pairwise check would."""

from __future__ import annotations

import bisect
import random
from ipaddress import ip_network

from kubenorn.networks import _inside, _overlaps_any


def test_bisection_finds_exactly_the_overlaps_a_pairwise_check_finds() -> None:
    rng = random.Random(19)
    for _ in range(200):
        accepted: list = []
        spans: list[tuple[int, int, int]] = []
        for _ in range(30):
            prefix = rng.choice([22, 23, 24, 25, 26])
            net = ip_network(
                f"10.200.{rng.randrange(0, 16)}.{rng.randrange(0, 256)}/{prefix}", strict=False
            )
            span = (net.version, int(net.network_address), int(net.broadcast_address))
            pairwise = any(_inside(net, other) or _inside(other, net) for other in accepted)
            assert _overlaps_any(spans, span) == pairwise, (net, accepted)
            if not pairwise:
                accepted.append(net)
                bisect.insort(spans, span)
