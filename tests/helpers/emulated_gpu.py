"""``backend="cupy"`` on the emulated device of :mod:`emulated_device`.

``EmulatedGpu`` is a :class:`~ringpipe.kernels.cuda.backend.GpuArrays` whose fused
"kernel" runs the step table with the NumPy executor on the wrapped memory and counts
launches, and whose peer-copy operations (:class:`EmulatedPeerOps`) queue work per
device and run it only at barriers, so ordering mistakes change results. Tests point
``ringpipe.collectives.api.gpu_arrays`` (and the plan runtime's) at :func:`emulated_gpu`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from emulated_device import EMULATED, DeviceArray, DeviceMismatch

from ringpipe.kernels.cuda.backend import GpuArrays
from ringpipe.kernels.cuda.peer import pair_table
from ringpipe.kernels.memory import addresses as host_addresses
from ringpipe.kernels.numpy_exec import run_table_numpy


class EmulatedPeerOps:
    """:class:`ringpipe.kernels.cuda.peer.PeerOps` with CUDA's ordering, made visible.

    Work is queued per device (a stream each) and runs only at ``barrier``, device by
    device in ``order`` ("forward" or "reverse"). A copy reads its source when it runs,
    as a peer copy on the receiver's stream does, so a missing barrier between steps
    lets a copy read a value a step too early and changes the result.
    """

    def __init__(self, order="forward"):
        self.order = order
        self.queues = {}
        self.counts = {"copy": 0, "combine": 0, "barrier": 0}

    def _enqueue(self, device, work):
        self.queues.setdefault(device, []).append(work)

    def scratch(self, like, size):
        return DeviceArray(np.full(size, 99, dtype=like.dtype), like.device_id)

    def copy(self, dst, src):
        assert dst.shape == src.shape, (dst.shape, src.shape)
        self.counts["copy"] += 1

        def work():
            dst.host_view[...] = src.host_view
        self._enqueue(dst.device_id, work)

    def combine(self, dst, src, op):
        if dst.device_id != src.device_id:
            raise DeviceMismatch(f"combine: devices {dst.device_id} and {src.device_id}")
        self.counts["combine"] += 1

        def work():
            run_table_numpy(pair_table(), [dst.host_view, src.host_view], op)
        self._enqueue(dst.device_id, work)

    def barrier(self, arrays):
        """Drain the queues of the devices holding ``arrays`` (and only those)."""
        self.counts["barrier"] += 1
        wanted = {a.device_id for a in arrays}
        devices = sorted(wanted & set(self.queues), reverse=self.order == "reverse")
        for device in devices:
            for work in self.queues.pop(device):
                work()


@dataclass(frozen=True)
class EmulatedGpu(GpuArrays):
    """Backend "cupy" on emulated devices; ``launches`` counts fused-kernel runs and
    ``peer`` is the peer-copy device model (see :class:`EmulatedPeerOps`)."""

    launches: list = field(default_factory=list)
    peer: EmulatedPeerOps = field(default_factory=EmulatedPeerOps)

    def addresses(self, arrays):
        return host_addresses([a.host_view for a in arrays])

    def device_of(self, array):
        return array.device_id

    def empty(self, size, like):
        return DeviceArray(np.empty(size, dtype=like.dtype), like.device_id)

    def peer_ops(self, tuning):
        return self.peer

    def assign(self, dst, src):
        if dst.device_id != src.device_id:
            raise DeviceMismatch(f"assign: devices {dst.device_id} and {src.device_id}")
        dst.host_view[...] = src.host_view

    def run_fused(self, table, outs, op, tuning, inputs=None):
        flat = [o.host_view.reshape(-1) for o in outs]
        if inputs is not None:
            for dst, src in zip(flat, inputs, strict=True):
                dst[...] = src.host_view.reshape(-1)
        run_table_numpy(table, flat, op)
        self.launches.append((table.collective, len(outs), outs[0].size))


def emulated_gpu(order="forward") -> EmulatedGpu:
    return EmulatedGpu(simulated=False, xp=EMULATED, array_type=DeviceArray,
                       peer=EmulatedPeerOps(order))
