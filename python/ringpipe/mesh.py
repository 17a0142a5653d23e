"""The device mesh: dp × pp × cp × tp ranks, their coordinates, their groups, and the
expert-parallel view MoE layers take of the same ranks.

Naming rule used across ringpipe: an **axis** is a mesh axis (``dp``, ``pp``, ``cp``,
``tp``); a **dim** is a tensor dimension. The names are Megatron-core's and torchtitan's:
``tp`` tensor parallel, ``cp`` context parallel (the sequence split over ranks),
``pp`` pipeline parallel, ``dp`` data parallel, ``ep`` expert parallel, ``etp`` expert
tensor parallel (Megatron's ``expert_tensor_parallel_size``) and ``edp`` expert data
parallel (Megatron's ``expt_dp`` group); ``dp_cp`` is the data-parallel group *with*
context parallelism, over which dense gradients are reduced (torchtitan's ``dp_cp``,
Megatron's ``get_data_parallel_group(with_context_parallel=True)``).

**Placement rules.** Ranks are laid out as ``arange(world).reshape(dp, pp, cp, tp)``
(picotron's convention, grown by one axis):

* **TP innermost**: consecutive ranks form a TP group, so that on a real cluster a TP
  group lands inside one node, on NVLink: it all-reduces every layer's activations
  (Narayanan et al., SC'21, §3.3);
* **then CP**: a CP group strides by tp, so tp · cp consecutive ranks hold whole
  sequences; with tp · cp ≤ GPUs per node the ring attention's K/V exchange stays in
  the node too (Megatron-core's default order ``tp-cp-ep-dp-pp`` keeps CP next to TP);
* PP and DP stride across nodes (one activation per micro-batch per stage boundary,
  and one gradient reduction per step).

rank = ((d · pp + p) · cp + c) · tp + t for coordinates (d, p, c, t). :class:`Coord`
lists them as ``(dp, pp, tp, cp)`` so that the three-axis calls ``Mesh.rank(d, p, t)``
and ``Coord(d, p, t)`` keep their meaning; cp defaults to 0.

**Where EP lands** (Megatron-core's "expert data parallel", ``parallel_state.py``).
MoE layers re-read the dp · cp · tp ranks of one pipeline position p, in rank order,
as an ``edp × ep × etp`` grid, etp fastest: local index i = (d · cp + c) · tp + t has
etp coordinate ``i mod etp``, ep coordinate ``(i // etp) mod ep`` and edp coordinate
``i // (etp · ep)``. With the default etp = tp an EP group is ep consecutive (d, c)
positions with one t: it stays inside a CP group when ep divides cp, and otherwise spans
DP replicas. Experts are split over the ep ranks (expert weights ÷ ep) and replicated
over the edp = dp · cp · tp / (etp · ep) ranks, which all-reduce their gradients; with
etp = tp, edp = dp · cp / ep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ringpipe.validation import check_int

#: The mesh axes, outermost first (the order of ``reshape(dp, pp, cp, tp)``).
AXES = ("dp", "pp", "cp", "tp")
#: Groups that are not a single mesh axis: dense gradients (dp_cp) and the MoE layers'
#: expert grid (module docstring).
DERIVED_GROUPS = ("dp_cp", "ep", "edp", "etp")
GROUPS = AXES + DERIVED_GROUPS


class Coord(NamedTuple):
    """A rank's position on the mesh (``cp`` last so ``Coord(d, p, t)`` keeps meaning)."""

    dp: int
    pp: int
    tp: int
    cp: int = 0


class ExpertCoord(NamedTuple):
    """A rank's position in its pipeline position's expert grid (module docstring)."""

    edp: int
    pp: int
    ep: int
    etp: int


@dataclass(frozen=True)
class Mesh:
    """A dp × pp × cp × tp mesh of ranks, with the MoE layers' ep × etp view of it (no
    global state: pass it around explicitly). ``etp`` None means tp (Megatron's
    default)."""

    dp: int = 1
    pp: int = 1
    tp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int | None = None

    def __post_init__(self) -> None:
        for axis in ("dp", "pp", "tp", "cp", "ep"):
            check_int(f"Mesh: {axis}", getattr(self, axis), 1)
        if self.etp is None:
            object.__setattr__(self, "etp", self.tp)
        check_int("Mesh: etp", self.etp, 1)
        slice_ranks = self.dp * self.cp * self.tp
        if slice_ranks % (self.ep * self.etp):
            raise ValueError(f"Mesh: ep × etp = {self.ep} × {self.etp} does not divide the "
                             f"dp × cp × tp = {self.dp} × {self.cp} × {self.tp} ranks of a "
                             "pipeline position (Megatron-core carves expert parallelism out "
                             "of them)")

    @property
    def world(self) -> int:
        """Total number of ranks, dp · pp · cp · tp."""
        return self.dp * self.pp * self.cp * self.tp

    @property
    def edp(self) -> int:
        """Expert data-parallel size: dp · cp · tp / (ep · etp) (dp · cp / ep when
        etp = tp): the ranks holding the same experts."""
        return self.dp * self.cp * self.tp // (self.ep * self.etp)  # type: ignore[operator]

    @property
    def tp_enabled(self) -> bool:
        """True when tensor parallelism splits the layers (tp > 1)."""
        return self.tp > 1

    @property
    def pp_enabled(self) -> bool:
        """True when the layers are split into pipeline stages (pp > 1)."""
        return self.pp > 1

    @property
    def dp_enabled(self) -> bool:
        """True when there are several data-parallel replicas (dp > 1)."""
        return self.dp > 1

    @property
    def cp_enabled(self) -> bool:
        """True when the sequence is split over context-parallel ranks (cp > 1)."""
        return self.cp > 1

    @property
    def ep_enabled(self) -> bool:
        """True when MoE experts are split over expert-parallel ranks (ep > 1)."""
        return self.ep > 1

    def _check_rank(self, rank: int) -> None:
        check_int("Mesh: rank", rank, None)
        if not 0 <= rank < self.world:
            raise ValueError(f"Mesh: rank {rank} out of range for a world of {self.world}")

    def coord(self, rank: int) -> Coord:
        """The (dp, pp, tp, cp) coordinates of ``rank``."""
        self._check_rank(rank)
        rest, t = divmod(rank, self.tp)
        rest, c = divmod(rest, self.cp)
        d, p = divmod(rest, self.pp)
        return Coord(d, p, t, c)

    def rank(self, dp: int, pp: int, tp: int, cp: int = 0) -> int:
        """The rank at coordinates (dp, pp, tp, cp)."""
        for axis, value in zip(("dp", "pp", "tp", "cp"), (dp, pp, tp, cp), strict=True):
            check_int(f"Mesh: {axis} coordinate", value, None)
            if not 0 <= value < getattr(self, axis):
                raise ValueError(f"Mesh: {axis} coordinate {value} out of range "
                                 f"[0, {getattr(self, axis)})")
        return ((dp * self.pp + pp) * self.cp + cp) * self.tp + tp

    def slice_index(self, rank: int) -> int:
        """``rank``'s index among the dp · cp · tp ranks of its pipeline position, in
        rank order: (d · cp + c) · tp + t."""
        d, _, t, c = self.coord(rank)
        return (d * self.cp + c) * self.tp + t

    def expert_coord(self, rank: int) -> ExpertCoord:
        """``rank``'s (edp, pp, ep, etp) coordinates in the MoE layers' expert grid."""
        i = self.slice_index(rank)
        etp = self.etp  # type: ignore[assignment]
        return ExpertCoord(i // (etp * self.ep), self.coord(rank).pp, (i // etp) % self.ep,
                           i % etp)

    def _slice_rank(self, pp: int, index: int) -> int:
        """The rank at index ``index`` of pipeline position ``pp`` (:meth:`slice_index`)."""
        rest, t = divmod(index, self.tp)
        d, c = divmod(rest, self.cp)
        return self.rank(d, pp, t, c)

    def group(self, axis: str, rank: int) -> tuple[int, ...]:
        """The ranks of ``rank``'s group along ``axis``, in order: a mesh axis ("dp",
        "pp", "cp", "tp"), "dp_cp" (every (d, c) of its (pp, tp), d-major), or an axis
        of the expert grid ("ep", "edp", "etp")."""
        if axis not in GROUPS:
            raise ValueError(f"Mesh: unknown axis {axis!r}; choose one of {', '.join(GROUPS)}")
        c = self.coord(rank)
        if axis in AXES:
            return tuple(self.rank(**{**c._asdict(), axis: i})
                         for i in range(getattr(self, axis)))
        if axis == "dp_cp":
            return tuple(self.rank(d, c.pp, c.tp, k) for d in range(self.dp)
                         for k in range(self.cp))
        e = self.expert_coord(rank)
        etp = self.etp  # type: ignore[assignment]
        size = {"ep": self.ep, "edp": self.edp, "etp": etp}[axis]
        members = []
        for i in range(size):
            at = {**e._asdict(), axis: i}
            index = (at["edp"] * self.ep + at["ep"]) * etp + at["etp"]
            members.append(self._slice_rank(c.pp, index))
        return tuple(members)

    def groups(self, axis: str) -> tuple[tuple[int, ...], ...]:
        """Every group along ``axis``, each once, ordered by their first rank."""
        seen: dict[tuple[int, ...], None] = {}
        for r in range(self.world):
            seen.setdefault(self.group(axis, r), None)
        return tuple(sorted(seen, key=lambda g: g[0]))

    def __str__(self) -> str:
        text = f"dp{self.dp} x pp{self.pp}"
        text += f" x cp{self.cp}" if self.cp > 1 else ""
        text += f" x tp{self.tp}"
        if self.ep > 1 or self.etp != self.tp:
            text += f" (ep{self.ep} x etp{self.etp})"
        return text
