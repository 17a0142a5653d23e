"""The device mesh: dp × pp × tp ranks, their coordinates and their groups.

Naming rule used across ringpipe: an **axis** is a mesh axis (``dp``, ``pp``, ``tp``);
a **dim** is a tensor dimension.

Ranks are laid out as ``arange(world).reshape(dp, pp, tp)`` (picotron's convention,
with tp fastest): consecutive ranks form a TP group, so that on a real cluster a TP group
lands inside one node, on NVLink (Narayanan et al., SC'21, §3.3), while PP and DP
groups stride across nodes.

* rank = (d · pp + p) · tp + t for coordinates (d, p, t);
* the TP group of a rank: same (d, p), t = 0..tp-1;
* its PP group: same (d, t), p = 0..pp-1, ordered by stage;
* its DP group: same (p, t), d = 0..dp-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ringpipe.validation import check_int

AXES = ("dp", "pp", "tp")


class Coord(NamedTuple):
    """A rank's position on the mesh."""

    dp: int
    pp: int
    tp: int


@dataclass(frozen=True)
class Mesh:
    """A dp × pp × tp mesh of ranks (no global state: pass it around explicitly)."""

    dp: int = 1
    pp: int = 1
    tp: int = 1

    def __post_init__(self) -> None:
        for axis in AXES:
            check_int(f"Mesh: {axis}", getattr(self, axis), 1)

    @property
    def world(self) -> int:
        """Total number of ranks, dp · pp · tp."""
        return self.dp * self.pp * self.tp

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

    def _check_rank(self, rank: int) -> None:
        check_int("Mesh: rank", rank, None)
        if not 0 <= rank < self.world:
            raise ValueError(f"Mesh: rank {rank} out of range for a world of {self.world}")

    def coord(self, rank: int) -> Coord:
        """The (dp, pp, tp) coordinates of ``rank``."""
        self._check_rank(rank)
        rest, t = divmod(rank, self.tp)
        d, p = divmod(rest, self.pp)
        return Coord(d, p, t)

    def rank(self, dp: int, pp: int, tp: int) -> int:
        """The rank at coordinates (dp, pp, tp)."""
        for axis, value in zip(AXES, (dp, pp, tp), strict=True):
            if not 0 <= value < getattr(self, axis):
                raise ValueError(f"Mesh: {axis} coordinate {value} out of range "
                                 f"[0, {getattr(self, axis)})")
        return (dp * self.pp + pp) * self.tp + tp

    def group(self, axis: str, rank: int) -> tuple[int, ...]:
        """The ranks of ``rank``'s group along ``axis`` ("dp", "pp" or "tp"), in order."""
        if axis not in AXES:
            raise ValueError(f"Mesh: unknown axis {axis!r}; choose one of {', '.join(AXES)}")
        c = self.coord(rank)
        members = []
        for i in range(getattr(self, axis)):
            members.append(self.rank(**{**c._asdict(), axis: i}))
        return tuple(members)

    def groups(self, axis: str) -> tuple[tuple[int, ...], ...]:
        """Every group along ``axis``, each once, ordered by their first rank."""
        seen: dict[tuple[int, ...], None] = {}
        for r in range(self.world):
            seen.setdefault(self.group(axis, r), None)
        return tuple(seen)

    def __str__(self) -> str:
        return f"dp{self.dp} x pp{self.pp} x tp{self.tp}"
