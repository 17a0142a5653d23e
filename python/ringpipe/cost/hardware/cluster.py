"""The cluster a plan runs on: frozen, validated dataclasses, presets and file loading.

Units inside ringpipe are SI base units: FLOP/s, bytes, bytes/s, seconds. Files and the
command line use the units vendors print (TFLOP/s, GiB, GB/s, µs), each spelled out in
the key name, so ``bandwidth_gbs = 25`` cannot be mistaken for gigabits.

Link bandwidths are **per GPU, each way**:

* ``intra`` is what one GPU can push to a peer in its node (NVLink through NVSwitch:
  300 GB/s on A100, 450 GB/s on H100; PCIe 4 x16: about 32 GB/s);
* ``inter`` is the GPU's share of its node's network injection bandwidth (a DGX A100
  has 8 × 200 Gb/s HDR InfiniBand, i.e. 25 GB/s per GPU).

Latencies are the per-step α of the α-β model (a few µs per NCCL step, NCCL's tuning
tables put NVLink ring steps at ~1-2 µs and network steps at ~5 µs).

A cluster file (TOML or JSON, read by :mod:`ringpipe.cost.clusterfile.load`) looks like::

    name = "my-cluster"
    gpus_per_node = 8
    nodes = 4                      # optional; --nodes overrides it
    peak_tflops = 312              # dense 16-bit matmul, per GPU
    memory_gib = 80                # HBM capacity
    memory_bandwidth_gbs = 2039    # HBM bandwidth
    achievable_fraction = 0.6      # optional: GEMM η_max; default: the calibrated constant
    [intra_node]
    bandwidth_gbs = 300
    latency_us = 2
    [inter_node]
    bandwidth_gbs = 25             # per GPU, each way, when every GPU crosses at once
    latency_us = 6
    nic_bandwidth_gbs = 25         # optional: most one GPU can push alone (one NIC)
    [kernels]                      # optional: GEMM/attention/launch model (cost.gpu)
    sm_count = 108
    tile_m = 128
    tile_n = 256
    flash_fraction = 0.6
    launch_overhead_us = 3
    saturation = 144               # d0 of the GEMM saturation term
    fp8_ratio = 2                  # FP8 dense peak / 16-bit dense peak (0: no FP8)
    grouped_gemm_efficiency = 1.0  # MoE grouped GEMMs' rate / a dense GEMM's

**Device.** ``device`` says what a rank is: ``"gpu"`` (the presets) or ``"cpu"`` (a
file ``ringpipe calibrate`` measured on CPU processes, labelled ``device = "cpu"``), so
the planner speaks of processes and GFLOP/s for the latter.

**Measured collectives.** ``collectives`` holds measured times by size
(:class:`~ringpipe.cost.hardware.measured.MeasuredCollective`, the file's
``[[collectives]]`` rows, e.g. from nccl-tests logs); the planner prefers them over the
α-β links for a group of the same size over the same number of nodes.

**NIC sharing.** The node's injection bandwidth is ``inter.bandwidth × gpus_per_node``;
one GPU alone reaches at most ``nic_bandwidth`` (its own NIC on a rail-optimised DGX,
so the default is ``inter.bandwidth``). When c GPUs of a node cross nodes at once, each
gets ``min(nic_bandwidth, node injection / c)`` (:meth:`Cluster.crossing_bandwidth`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from ringpipe.cost.hardware.gpu import A100, H100, MICROSECOND, GpuKernels
from ringpipe.cost.hardware.measured import MeasuredCollective
from ringpipe.validation import check_int, check_real

GB = 1e9
GIB = float(2**30)
#: What a rank of a cluster is: a GPU, or a CPU process (a file calibrated on CPUs).
DEVICES = ("gpu", "cpu")
TFLOP = 1e12

#: η_max of the GEMM model (:mod:`ringpipe.cost.hardware.gpu`): the fraction of peak a large,
#: well-shaped 16-bit GEMM sustains on A100. Fitted, with the saturation d0
#: (:data:`ringpipe.cost.hardware.gpu.CALIBRATED_SATURATION`), by least squares on the relative
#: error over all ten rows of Megatron-LM's SC'21 Table 1
#: (:func:`ringpipe.cost.published.megatron.calibrate_saturation`);
#: ``tests/cost/training/test_megatron_table.py`` checks the stored pair is still that optimum.
CALIBRATED_FRACTION_OF_PEAK = 0.762
#: H100 SXM: NOT fitted (no H100 data is used for fitting). The A100 value scaled by
#: 0.8, the ratio of the fractions of peak large bf16 cuBLAS GEMMs are commonly measured
#: at on H100 SXM (≈ 700-750 of 989 TFLOP/s) and A100 (≈ 280 of 312 TFLOP/s): an
#: assumption, stated as such; override it with ``achievable_fraction``.
H100_FRACTION_OF_PEAK = round(CALIBRATED_FRACTION_OF_PEAK * 0.8, 3)


def _positive(owner: str, name: str, value: object) -> None:
    check_real(f"{owner}.{name}", value, positive=True)


def _positive_int(owner: str, name: str, value: object) -> None:
    check_int(f"{owner}.{name}", value)


@dataclass(frozen=True)
class Link:
    """One link class of the α-β model: ``bandwidth`` (bytes/s, each way) and
    ``latency`` α (s). Moving n bytes costs ``latency + n / bandwidth``."""

    bandwidth: float
    latency: float

    def __post_init__(self) -> None:
        _positive("Link", "bandwidth", self.bandwidth)
        check_real("Link.latency", self.latency, 0.0)

    def time(self, nbytes: float) -> float:
        """α + n·β for one message of ``nbytes`` (0 bytes cost nothing)."""
        return self.latency + nbytes / self.bandwidth if nbytes > 0 else 0.0


@dataclass(frozen=True)
class Cluster:
    """``nodes`` identical nodes of ``gpus_per_node`` GPUs; see the module docstring.

    ``achievable_fraction`` is η_max, the fraction of ``peak_flops`` large dense
    matmuls reach in practice (one calibrated constant, not a per-configuration fudge);
    ``kernels`` the rest of the GPU's kernel model (:mod:`ringpipe.cost.hardware.gpu`);
    ``nic_bandwidth`` the most one GPU reaches across nodes alone (None: ``inter``'s).
    """

    name: str
    nodes: int
    gpus_per_node: int
    peak_flops: float
    memory_bytes: float
    memory_bandwidth: float
    intra: Link
    inter: Link
    achievable_fraction: float = CALIBRATED_FRACTION_OF_PEAK
    kernels: GpuKernels = A100
    nic_bandwidth: float | None = None
    device: str = "gpu"
    collectives: tuple[MeasuredCollective, ...] = ()

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"Cluster.device must be one of {', '.join(DEVICES)}, got "
                             f"{self.device!r}")
        if not isinstance(self.collectives, tuple) or not all(
                isinstance(m, MeasuredCollective) for m in self.collectives):
            raise TypeError("Cluster.collectives must be a tuple of MeasuredCollective")
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("Cluster.name must be a non-empty str")
        _positive_int("Cluster", "nodes", self.nodes)
        _positive_int("Cluster", "gpus_per_node", self.gpus_per_node)
        for name in ("peak_flops", "memory_bytes", "memory_bandwidth"):
            _positive("Cluster", name, getattr(self, name))
        for name in ("intra", "inter"):
            if not isinstance(getattr(self, name), Link):
                raise TypeError(f"Cluster.{name} must be a Link, "
                                f"got {type(getattr(self, name)).__name__}")
        if not isinstance(self.kernels, GpuKernels):
            raise TypeError(f"Cluster.kernels must be a GpuKernels, "
                            f"got {type(self.kernels).__name__}")
        if self.nic_bandwidth is not None:
            _positive("Cluster", "nic_bandwidth", self.nic_bandwidth)
        frac = check_real("Cluster.achievable_fraction", self.achievable_fraction)
        if not 0 < frac <= 1:
            raise ValueError(f"Cluster.achievable_fraction must be in (0, 1], got {frac}")
        if self.gpus_per_node > 1 and self.inter.bandwidth > self.intra.bandwidth:
            raise ValueError(
                f"Cluster.inter.bandwidth ({self.inter.bandwidth / GB:g} GB/s per GPU) "
                f"exceeds Cluster.intra.bandwidth ({self.intra.bandwidth / GB:g} GB/s): "
                "inconsistent (traffic would route through the NIC); check the units")

    @property
    def world(self) -> int:
        """Total GPUs, nodes · gpus_per_node."""
        return self.nodes * self.gpus_per_node

    @property
    def achievable_flops(self) -> float:
        """peak_flops · achievable_fraction: the matmul rate the step-time model uses."""
        return self.peak_flops * self.achievable_fraction

    def crossing_bandwidth(self, concurrent: int) -> float:
        """Bytes/s each of ``concurrent`` GPUs of one node gets when they all cross
        nodes at once: min(NIC, node injection / concurrent) (module docstring)."""
        nic = self.inter.bandwidth if self.nic_bandwidth is None else self.nic_bandwidth
        node = self.inter.bandwidth * self.gpus_per_node
        return min(nic, node / max(1, concurrent))

    def node_of(self, gpu: int) -> int:
        """The node that global GPU index ``gpu`` sits in (GPUs numbered node-major)."""
        if not 0 <= check_int("gpu", gpu, None) < self.world:
            raise ValueError(f"gpu {gpu} out of range for a cluster of {self.world} GPUs")
        return gpu // self.gpus_per_node

    def measured(self, collective: str, ranks: int, nodes: int) -> MeasuredCollective | None:
        """The measured table of ``collective`` on ``ranks`` ranks over ``nodes`` nodes
        (the last one given wins), or None."""
        found = [m for m in self.collectives
                 if (m.collective, m.ranks, m.nodes) == (collective, ranks, nodes)]
        return found[-1] if found else None

    def with_nodes(self, nodes: int) -> Cluster:
        """The same cluster with ``nodes`` nodes."""
        return replace(self, nodes=nodes)

    def to_dict(self) -> dict[str, Any]:
        """The file form (vendor units), as :func:`cluster_from_dict` reads it."""
        return {
            "name": self.name, "device": self.device, "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "peak_tflops": self.peak_flops / TFLOP, "memory_gib": self.memory_bytes / GIB,
            "memory_bandwidth_gbs": self.memory_bandwidth / GB,
            "achievable_fraction": self.achievable_fraction,
            "intra_node": {"bandwidth_gbs": self.intra.bandwidth / GB,
                           "latency_us": self.intra.latency / MICROSECOND},
            "inter_node": {"bandwidth_gbs": self.inter.bandwidth / GB,
                           "latency_us": self.inter.latency / MICROSECOND,
                           **({} if self.nic_bandwidth is None else
                              {"nic_bandwidth_gbs": self.nic_bandwidth / GB})},
            "kernels": {"sm_count": self.kernels.sm_count, "tile_m": self.kernels.tile_m,
                        "tile_n": self.kernels.tile_n,
                        "flash_fraction": self.kernels.flash_fraction,
                        "saturation": self.kernels.saturation,
                        "launch_overhead_us": self.kernels.launch_overhead / MICROSECOND,
                        "fp8_ratio": self.kernels.fp8_ratio,
                        "grouped_gemm_efficiency": self.kernels.grouped_gemm_efficiency},
            **({"collectives": [m.to_dict() for m in self.collectives]}
               if self.collectives else {}),
        }


def _preset(name: str, tflops: float, gib: float, hbm_gbs: float, intra_gbs: float,
            intra_us: float, inter_gbs: float, inter_us: float, kernels: GpuKernels = A100,
            fraction: float = CALIBRATED_FRACTION_OF_PEAK,
            nic_gbs: float | None = None) -> Cluster:
    return Cluster(name, 1, 8, tflops * TFLOP, gib * GIB, hbm_gbs * GB,
                   Link(intra_gbs * GB, intra_us * MICROSECOND),
                   Link(inter_gbs * GB, inter_us * MICROSECOND), fraction, kernels,
                   None if nic_gbs is None else nic_gbs * GB)


#: One-node presets (use :func:`cluster_preset` to set the node count).
#: dgx-a100: A100 80GB SXM, 312 TFLOP/s bf16, 2039 GB/s HBM2e, NVLink3 300 GB/s each
#: way, 8 × 200 Gb/s HDR per node. dgx-h100: H100 SXM 80GB, 989 TFLOP/s, 3350 GB/s
#: HBM3, NVLink4 450 GB/s, 8 × 400 Gb/s NDR. pcie-a100: A100 80GB PCIe (1935 GB/s) on
#: PCIe 4 x16 (~32 GB/s each way) with 2 × 200 Gb/s HDR per node (6.25 GB/s per GPU
#: when all 8 cross, up to one NIC's 25 GB/s alone).
#: dgx-h200: H200 SXM, the H100's 989 TFLOP/s with 141 GB HBM3e at 4.8 TB/s; NVLink4
#: 900 GB/s per GPU, i.e. 450 GB/s each way as for dgx-h100, and 8 × 400 Gb/s NDR.
CLUSTER_PRESETS = MappingProxyType({
    c.name: c for c in (
        _preset("dgx-a100", 312, 80, 2039, 300, 2, 25, 6),
        _preset("dgx-h100", 989, 80, 3350, 450, 2, 50, 6, H100, H100_FRACTION_OF_PEAK),
        _preset("pcie-a100", 312, 80, 1935, 32, 4, 6.25, 6, nic_gbs=25),
        _preset("dgx-h200", 989, 141e9 / GIB, 4800, 450, 2, 50, 6, H100, H100_FRACTION_OF_PEAK),
    )
})


def cluster_preset(name: str, nodes: int = 1) -> Cluster:
    """The preset ``name`` with ``nodes`` nodes (ValueError lists the presets)."""
    if not isinstance(name, str):
        raise TypeError(f"cluster: expected a preset name (str), got {type(name).__name__}")
    try:
        base = CLUSTER_PRESETS[name]
    except KeyError:
        raise ValueError(f"cluster: unknown preset {name!r}; choose one of "
                         f"{', '.join(CLUSTER_PRESETS)} or give a cluster file") from None
    return base.with_nodes(nodes)
