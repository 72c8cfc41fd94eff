"""The fault model: what can happen to a datagram between two places.

One model serves both places faults are applied: net9.sim's Wire (one
Faults per direction between two simulated hosts, in virtual time) and
net9.media.FaultyMedium (a wrapper any real medium can wear, in monotonic
time).  Probabilities are per datagram, in 0..1; times are ms."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

__all__ = ["Faults"]


@dataclass
class Faults:
    """Fault model of one direction.

    Probabilities are per packet.  Times are ms (integers on net9.sim's
    wire).  bandwidth is in bytes per ms (None: infinite); with it, packets
    of a direction serialize one after another: a packet of n bytes occupies
    the link for n/bandwidth ms (exact fractions) starting when the link
    frees, and is delivered at ceil(end of serialization) + delay + jitter +
    reorder.  queue_limit bounds the packets waiting for or in serialization
    (drop-tail; only meaningful with bandwidth).  jitter, bandwidth and
    queue_limit are net9.sim's only: FaultyMedium refuses them."""
    loss: float = 0.0            # probability a packet is lost
    dup: float = 0.0             # probability a packet is delivered twice
    reorder: float = 0.0         # probability a packet gets reorder_delay extra ms
    reorder_delay: int = 10
    delay: int = 1               # base one-way latency, ms
    jitter: int = 0              # uniform extra 0..jitter ms (integer)
    bandwidth: Optional[float] = None   # bytes per ms, None = infinite
    corrupt: float = 0.0         # probability one random bit of the packet flips
    queue_limit: Optional[int] = None   # packets; drop-tail when full

    @classmethod
    def fieldnames(cls) -> tuple:
        return tuple(f.name for f in fields(cls))

    def check(self) -> "Faults":
        """Raises ValueError when a probability is outside 0..1."""
        for p in (self.loss, self.reorder, self.dup, self.corrupt):
            if not 0.0 <= p <= 1.0:
                raise ValueError("probability %r not in 0..1" % (p,))
        return self
