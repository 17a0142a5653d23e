"""Seconds per micro-batch of a layer or a stage, by pass: :class:`OpTimes`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OpTimes"]


@dataclass(frozen=True)
class OpTimes:
    """Seconds per micro-batch: forward, input gradient, weight gradient, the
    communication included in them (forward + backward: TP, and the exposed parts of
    the CP ring and of the MoE all-to-alls), and the computation included in them (every
    kernel but those collectives). ``compute`` is summed from the kernels' own times,
    never taken as the passes minus the communication: when one term dwarfs the others
    that difference cancels to rounding noise, even below zero."""

    forward: float
    backward_input: float
    backward_weight: float
    tp_comm: float
    cp_comm: float = 0.0
    ep_comm: float = 0.0
    compute: float = 0.0

    def __add__(self, other: OpTimes) -> OpTimes:
        return OpTimes(self.forward + other.forward,
                       self.backward_input + other.backward_input,
                       self.backward_weight + other.backward_weight,
                       self.tp_comm + other.tp_comm, self.cp_comm + other.cp_comm,
                       self.ep_comm + other.ep_comm, self.compute + other.compute)

    def scaled(self, n: float) -> OpTimes:
        """n layers' worth."""
        return OpTimes(n * self.forward, n * self.backward_input, n * self.backward_weight,
                       n * self.tp_comm, n * self.cp_comm, n * self.ep_comm,
                       n * self.compute)
