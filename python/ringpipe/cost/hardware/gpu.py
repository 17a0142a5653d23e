"""How fast one GPU runs one kernel: a roofline with tile and wave quantisation.

A GEMM C[M×N] = A[M×K]·B[K×N] in 16-bit runs 2·M·N·K FLOPs and moves at least
2·(M·K + K·N + M·N) bytes of HBM. Its time is

    t = max( 2·M·N·K / (peak · η_max · sat(M, N, K) · wave(M, N)),  bytes / HBM,  launch )

* ``η_max`` (``Cluster.achievable_fraction``) is the fraction of peak a large,
  well-shaped GEMM sustains;
* ``sat(M, N, K) = M/(M + d0) · N/(N + d0) · K/(K + d0)`` is the saturation of the
  roofline: a GEMM with a small dimension runs further below η_max than tile
  quantisation alone explains (fewer k-iterations to hide each tile's prologue and
  epilogue, less reuse per tile). η_max and d0 are the two constants fitted, both on
  Megatron-LM SC'21 Table 1 only (:mod:`ringpipe.cost.published.megatron`): η_max = 0.762,
  d0 = 144 (least squares over the ten rows; the RMS error is 2.6% against 4.6% with
  d0 = 0).
* ``wave(M, N)`` is the tile/wave quantisation efficiency NVIDIA documents for cuBLAS
  ("Matrix Multiplication Background User's Guide", §§ tile quantization and wave
  quantization): the output is cut into ⌈M/tile_m⌉·⌈N/tile_n⌉ tiles, one per SM per
  wave, so a GEMM with ``tiles`` tiles on ``sm_count`` SMs runs ⌈tiles/SMs⌉ waves and
  wave = tiles / (⌈tiles/SMs⌉ · SMs). This is what makes a TP=8 or micro-batch-1 GEMM
  (thin N or short M) slower per FLOP than a fat one.
* the memory term is the roofline's (Williams et al. 2009); it dominates only for
  skinny shapes (e.g. attention score GEMMs with head dimension 64–128 on A100).
* ``launch``: no kernel takes less than the launch overhead (a few µs on CUDA; kernels
  are asynchronous, so the overhead only shows when the kernel is shorter).

Attention with FlashAttention runs its FLOPs at ``flash_fraction`` of peak (Dao 2023,
FlashAttention-2, reports 50–73% of A100 peak forward and a lower fraction backward;
FlashAttention-3 (Shah et al. 2024) reports FA2 at ~35% and FA3 at ~75% of H100 peak).

Memory-bound kernels (norms, softmax, activations, residual adds, dropout, the
optimizer step) take max(bytes / HBM bandwidth, launch).

**FP8** (``fp8_ratio``): the dense FP8 tensor-core peak over the 16-bit one, 2 on Hopper
(H100/H200 SXM: 1979 against 989 TFLOP/s dense, NVIDIA H100 datasheet), 0 on a GPU
without FP8 tensor cores (A100): FP8 training is then refused. FP8 GEMMs run at
``fp8_ratio`` × the 16-bit rate with the same η_max and saturation (an assumption: no
FP8 GEMM table is fitted).

**Grouped GEMMs** (``grouped_gemm_efficiency``): MoE experts run as one grouped GEMM
over the local experts, each at its own (small) shape; wave quantisation counts the
tiles of the whole group, and the rate is multiplied by this efficiency (default 1.0:
no penalty beyond the per-expert shapes' own saturation; set it from a measurement in
the cluster file's ``[kernels]``).

Defaults per GPU type: A100 SXM has 108 SMs, H100 SXM 132 (NVIDIA whitepapers);
cuBLAS's large 16-bit tiles are 128×256 on both. The cluster file's ``[kernels]``
table overrides any of them, ``saturation`` included (``ringpipe calibrate`` is meant to
measure them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ringpipe.validation import check_int, check_real

MICROSECOND = 1e-6
#: d0 of the saturation term (module docstring), fitted with η_max on Megatron-LM SC'21
#: Table 1 only (:func:`ringpipe.cost.published.megatron.calibrate`).
CALIBRATED_SATURATION = 144.0
#: The largest d0 taken: sat(1, 1, 1) = (1 / (1 + d0))³ is then 1e-27, still a number;
#: d0 = 1e300 made it 0 and every GEMM a division by zero.
MAX_SATURATION = 1e9


@dataclass(frozen=True)
class GpuKernels:
    """Kernel-level constants of one GPU type (module docstring); frozen, validated."""

    sm_count: int = 108
    tile_m: int = 128
    tile_n: int = 256
    flash_fraction: float = 0.6
    launch_overhead: float = 3.0 * MICROSECOND
    saturation: float = CALIBRATED_SATURATION
    fp8_ratio: float = 0.0
    grouped_gemm_efficiency: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sm_count", "tile_m", "tile_n"):
            check_int(f"GpuKernels.{name}", getattr(self, name))
        for name in ("flash_fraction", "launch_overhead", "saturation"):
            check_real(f"GpuKernels.{name}", getattr(self, name))
        if not 0 < self.flash_fraction <= 1:
            raise ValueError(f"GpuKernels.flash_fraction must be in (0, 1], got "
                             f"{self.flash_fraction}")
        if not 0 <= self.saturation <= MAX_SATURATION:  # beyond, sat(M, N, K) underflows
            raise ValueError(f"GpuKernels.saturation must be in [0, {MAX_SATURATION:g}], "
                             f"got {self.saturation}")
        check_real("GpuKernels.fp8_ratio", self.fp8_ratio, 0.0)
        check_real("GpuKernels.grouped_gemm_efficiency", self.grouped_gemm_efficiency)
        if not 0 < self.grouped_gemm_efficiency <= 1:
            raise ValueError(f"GpuKernels.grouped_gemm_efficiency must be in (0, 1], got "
                             f"{self.grouped_gemm_efficiency}")
        if self.launch_overhead < 0:
            raise ValueError(f"GpuKernels.launch_overhead must be >= 0, got "
                             f"{self.launch_overhead}")

    def wave_efficiency(self, m: float, n: float, batch: int = 1) -> float:
        """tiles / (waves · SMs) for ``batch`` independent M×N outputs."""
        tiles = batch * math.ceil(m / self.tile_m) * math.ceil(n / self.tile_n)
        return tiles / (math.ceil(tiles / self.sm_count) * self.sm_count)

    def gemm_time(self, m: float, n: float, k: float, rate: float, hbm: float,
                  batch: int = 1, nbytes: int = 2) -> float:
        """Seconds for ``batch`` GEMMs of M×N×K at ``rate`` (peak · η_max) FLOP/s."""
        if m <= 0 or n <= 0 or k <= 0:
            return 0.0
        flops = 2.0 * batch * m * n * k
        d0 = self.saturation
        sat = (m / (m + d0)) * (n / (n + d0)) * (k / (k + d0))
        compute = flops / (rate * sat * self.wave_efficiency(m, n, batch))
        memory = batch * nbytes * (m * k + k * n + m * n) / hbm
        return max(compute, memory, self.launch_overhead)

    def memory_time(self, nbytes: float, hbm: float) -> float:
        """Seconds for one memory-bound kernel moving ``nbytes``."""
        return max(nbytes / hbm, self.launch_overhead) if nbytes > 0 else 0.0


#: A100 SXM (108 SMs) and H100 SXM (132 SMs); FlashAttention fractions from the papers
#: cited in the module docstring (A100: FA2 forward/backward average ≈ 0.6; H100: 0.5,
#: between FA2's 0.35 and FA3's 0.75, as cuDNN/Transformer Engine attention reaches).
#: FP8: none on A100, twice the 16-bit peak on H100.
A100 = GpuKernels(sm_count=108, flash_fraction=0.6, saturation=CALIBRATED_SATURATION)
H100 = GpuKernels(sm_count=132, flash_fraction=0.5, saturation=CALIBRATED_SATURATION,
                  fp8_ratio=2.0)
