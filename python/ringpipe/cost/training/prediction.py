"""What the training cost model is asked about (:class:`Config`) and what it answers
(:class:`StepPrediction`, a :class:`ringpipe.cost.prediction.Prediction`).

A :class:`Config` is one point of the search: a :class:`ringpipe.mesh.Mesh` (the same
mesh type :class:`ringpipe.Plan` runs on), the schedule, its chunks per rank (resolved
by :func:`ringpipe.schedules.resolve_chunks`, the one resolver), the micro-batch size,
the activation recomputation and how the layers are split over the stages: ``split``
"even" or "balanced" (:mod:`ringpipe.plan.balance`), or an explicit ``layout``
(:class:`ringpipe.plan.layout.PipelineLayout`, the object ``Plan`` runs).

FLOPs are reported two ways, named as such (Korthikanti et al. 2022, §6.1):

* **model FLOPs**: the FLOPs of one forward and backward of the model, no recomputation
  (:func:`ringpipe.cost.training.spec.executed_flops` with ``"none"``); model FLOPs per second
  over peak is the MFU, which ranks configurations of one global batch exactly as the
  step time does;
* **hardware FLOPs**: what the GPUs execute, recomputation included (Megatron's
  SC'21 TFLOP/s count, eq. 3, when recomputation is full); over peak it is the HFU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ringpipe.cost.hardware.cluster import GIB
from ringpipe.cost.training.memory import MemoryBreakdown
from ringpipe.cost.training.spec import RECOMPUTE
from ringpipe.mesh import Mesh
from ringpipe.plan.layout import SPLITS, PipelineLayout
from ringpipe.schedules import resolve_chunks, schedule_spec
from ringpipe.validation import check_int


@dataclass(frozen=True)
class Config:
    """One point of the search (module docstring). ``chunks`` None: the schedule's."""

    mesh: Mesh
    schedule: str = "1f1b"
    microbatch_size: int = 1
    chunks: int | None = None
    recompute: str = "none"
    split: str = "even"
    layout: PipelineLayout | None = None
    #: ``synth`` only: the activation memory per rank the synthesised schedule may use, in
    #: micro-batches of the fullest stage (Qi et al.'s M_limit in units of M_B: 2p for
    #: their ZB-2p); None: whatever the GPU memory leaves.
    activation_cap: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mesh, Mesh):
            raise TypeError(f"Config.mesh must be a ringpipe.mesh.Mesh, got "
                            f"{type(self.mesh).__name__}")
        check_int("Config.microbatch_size", self.microbatch_size)
        if self.chunks is not None:
            check_int("Config.chunks", self.chunks)
        object.__setattr__(self, "chunks", resolve_chunks(self.schedule, self.chunks))
        object.__setattr__(self, "schedule", schedule_spec(self.schedule).name)  # auto: synth
        if self.recompute not in RECOMPUTE:
            raise ValueError(f"Config.recompute must be one of {RECOMPUTE}, "
                             f"got {self.recompute!r}")
        if self.split not in SPLITS:
            raise ValueError(f"Config.split must be one of {SPLITS}, got {self.split!r}")
        if isinstance(self.layout, str):
            object.__setattr__(self, "layout", PipelineLayout.parse(self.layout))
        if self.layout is not None and not isinstance(self.layout, PipelineLayout):
            raise TypeError(f"Config.layout must be a PipelineLayout or its text, got "
                            f"{type(self.layout).__name__}")
        if self.activation_cap is not None:
            check_int("Config.activation_cap", self.activation_cap)
            if self.schedule != "synth":
                raise ValueError("Config.activation_cap applies to the synthesised schedule "
                                 "(schedule 'synth' or 'auto') only")

    @property
    def split_name(self) -> str:
        """"even", "balanced", or "layout" for an explicit layout."""
        return "layout" if self.layout is not None else self.split

    @property
    def tp(self) -> int:
        """Tensor-parallel size."""
        return self.mesh.tp

    @property
    def pp(self) -> int:
        """Pipeline ranks."""
        return self.mesh.pp

    @property
    def dp(self) -> int:
        """Data-parallel replicas."""
        return self.mesh.dp

    @property
    def cp(self) -> int:
        """Context-parallel size."""
        return self.mesh.cp

    @property
    def ep(self) -> int:
        """Expert-parallel size (MoE layers)."""
        return self.mesh.ep

    @property
    def etp(self) -> int:
        """Expert-tensor-parallel size (MoE layers)."""
        return self.mesh.etp  # type: ignore[return-value]

    @property
    def world(self) -> int:
        """GPUs used, tp · cp · pp · dp."""
        return self.mesh.world

    def label(self) -> str:
        """Short human-readable form, e.g. ``tp8 pp4 dp1 interleaved-1f1b v3 mb1 full``
        (``cp``, ``ep`` and ``etp`` appear when they are not 1, resp. not tp)."""
        v = f" v{self.chunks}" if self.chunks > 1 else ""
        cp = f" cp{self.cp}" if self.cp > 1 else ""
        ep = f" ep{self.ep}" if self.ep > 1 else ""
        etp = f" etp{self.etp}" if self.etp != self.tp else ""
        split = "" if self.split_name == "even" else f" {self.split_name}"
        return (f"tp{self.tp}{cp} pp{self.pp} dp{self.dp}{ep}{etp} {self.schedule}{v} "
                f"mb{self.microbatch_size} {self.recompute}{split}")


@dataclass(frozen=True)
class StepPrediction:
    """A configuration's predicted step. Times in seconds; compute, TP communication,
    the exposed CP ring and MoE all-to-alls, bubble, exposed DP communication, the
    optimizer step and the FP8 weight casts add up to ``step_time`` (compute, TP, CP, EP
    and bubble are averages over pipeline ranks). ``assumptions``: what decided it
    (:meth:`~ringpipe.cost.training.step_time.StepModel.assumptions`)."""

    config: Config
    num_microbatches: int
    step_time: float
    compute_time: float
    tp_comm_time: float
    bubble_time: float
    dp_comm_time: float
    optimizer_time: float
    bubble_fraction: float
    message_time: float
    hardware_flops_per_step: float
    model_flops_per_step: float
    memory: MemoryBreakdown
    memory_capacity: float
    peak_flops: float
    headroom: float = 0.0
    dp_comm_total: float = 0.0
    layers_per_stage: tuple[int, ...] = ()
    peak_in_flight: tuple[int, ...] = ()
    layout: str = ""
    assumptions: Mapping[str, object] = field(default_factory=dict, compare=False)
    cp_comm_time: float = 0.0
    ep_comm_time: float = 0.0
    fp8_cast_time: float = 0.0
    rank_busy: tuple[float, ...] = ()

    @property
    def imbalance_fraction(self) -> float:
        """The part of ``bubble_fraction`` that uneven work per pipeline rank causes:
        1 − mean/max of the ranks' busy seconds (the idle time the other ranks would
        have even with no fill, drain or message delay)."""
        if not self.rank_busy or max(self.rank_busy) <= 0:
            return 0.0
        return 1 - sum(self.rank_busy) / (len(self.rank_busy) * max(self.rank_busy))

    @property
    def total_s(self) -> float:
        """The step time, seconds."""
        return self.step_time

    @property
    def breakdown_s(self) -> dict[str, float]:
        """The five parts of the step (:meth:`parts`), then the whole DP communication
        (``dp_comm_total``, of which ``dp_comm_exposed`` is in the step) and one
        stage-to-stage message (``pp_message``)."""
        return {**self.parts(), "dp_comm_total": self.dp_comm_total,
                "pp_message": self.message_time}

    @property
    def memory_bytes(self) -> dict[str, float]:
        """Bytes on the fullest GPU by kind, and ``total``."""
        m = self.memory
        return {"weights": m.weights, "gradients": m.gradients, "optimizer": m.optimizer,
                "activations": m.activations, "comm_buffers": m.comm_buffers,
                "reserved": m.reserved, "total": m.total}

    @property
    def fits(self) -> bool:
        """Whether the fullest GPU leaves at least ``headroom`` bytes free."""
        return self.memory.total + self.headroom <= self.memory_capacity

    @property
    def hardware_tflops_per_gpu(self) -> float:
        """Hardware FLOPs (recomputation included) per GPU per second, in TFLOP/s."""
        return self.hardware_flops_per_step / (self.step_time * self.config.world) / 1e12

    @property
    def tflops_per_gpu(self) -> float:
        """Alias of :attr:`hardware_tflops_per_gpu` (Megatron's SC'21 count)."""
        return self.hardware_tflops_per_gpu

    @property
    def model_tflops_per_gpu(self) -> float:
        """Model FLOPs (no recomputation) per GPU per second, in TFLOP/s."""
        return self.model_flops_per_step / (self.step_time * self.config.world) / 1e12

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation: model FLOP/s per GPU over peak."""
        return self.model_tflops_per_gpu * 1e12 / self.peak_flops

    @property
    def hfu(self) -> float:
        """Hardware FLOPs utilisation: hardware FLOP/s per GPU over peak."""
        return self.hardware_tflops_per_gpu * 1e12 / self.peak_flops

    @property
    def comm_fraction(self) -> float:
        """Exposed communication (TP, CP, EP and DP) as a fraction of the step."""
        return (self.tp_comm_time + self.cp_comm_time + self.ep_comm_time
                + self.dp_comm_time) / self.step_time

    def parts(self) -> dict[str, float]:
        """The parts of the step time, seconds (the CP, EP and FP8 parts only where
        the configuration has them)."""
        out = {"compute": self.compute_time, "tp_comm": self.tp_comm_time,
               "bubble": self.bubble_time, "dp_comm_exposed": self.dp_comm_time,
               "optimizer": self.optimizer_time}
        for name, value, present in (
                ("cp_comm_exposed", self.cp_comm_time, self.config.cp > 1),
                ("ep_comm", self.ep_comm_time, self.config.ep > 1 or self.ep_comm_time > 0),
                ("fp8_weight_casts", self.fp8_cast_time, self.fp8_cast_time > 0)):
            if present:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the ``plan`` command prints for a candidate."""
        c = self.config
        return {"tp": c.tp, "pp": c.pp, "dp": c.dp, "cp": c.cp, "ep": c.ep, "etp": c.etp,
                "schedule": c.schedule,
                "chunks": c.chunks, "microbatch_size": c.microbatch_size,
                "recompute": c.recompute, "num_microbatches": self.num_microbatches,
                "step_time_s": self.step_time,
                "model_tflops_per_gpu": self.model_tflops_per_gpu,
                "hardware_tflops_per_gpu": self.hardware_tflops_per_gpu,
                "mfu": self.mfu, "hfu": self.hfu,
                "memory_gib": self.memory.total / GIB, "memory": self.memory.to_dict(),
                "headroom_gib": self.headroom / GIB,
                "bubble_fraction": self.bubble_fraction,
                "bubble_from_imbalance": self.imbalance_fraction,
                "comm_fraction": self.comm_fraction, "fits": self.fits,
                "layers_per_stage": list(self.layers_per_stage),
                "split": c.split_name, "layout": self.layout,
                "activation_cap": c.activation_cap,
                "breakdown_s": self.breakdown_s, "assumptions": dict(self.assumptions)}
