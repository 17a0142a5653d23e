"""The mesh: coordinates round-trip, groups partition the world along each axis."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpipe.mesh import Coord, Mesh

sizes = st.integers(1, 5)


@given(sizes, sizes, sizes)
def test_coordinates_round_trip_and_groups_partition(dp, pp, tp):
    mesh = Mesh(dp=dp, pp=pp, tp=tp)
    assert mesh.world == dp * pp * tp
    for r in range(mesh.world):
        c = mesh.coord(r)
        assert mesh.rank(*c) == r
    for axis in ("dp", "pp", "tp"):
        groups = mesh.groups(axis)
        assert sorted(r for g in groups for r in g) == list(range(mesh.world))
        assert all(len(g) == getattr(mesh, axis) for g in groups)
        for g in groups:
            for i, r in enumerate(g):
                assert getattr(mesh.coord(r), axis) == i
                assert mesh.group(axis, r) == g


def test_tp_is_the_fastest_axis():
    mesh = Mesh(dp=2, pp=2, tp=2)
    assert mesh.group("tp", 5) == (4, 5)
    assert mesh.group("pp", 5) == (5, 7)
    assert mesh.group("dp", 5) == (1, 5)
    assert mesh.coord(6) == Coord(1, 1, 0)
    assert mesh.tp_enabled and mesh.pp_enabled and mesh.dp_enabled
    assert not Mesh().tp_enabled


def test_bad_input():
    with pytest.raises(ValueError, match="tp must be >= 1"):
        Mesh(tp=0)
    with pytest.raises(TypeError, match="pp must be an int"):
        Mesh(pp=2.0)
    with pytest.raises(ValueError, match="rank 8 out of range"):
        Mesh(dp=2, pp=2, tp=2).coord(8)
    with pytest.raises(ValueError, match="unknown axis"):
        Mesh().group("ep", 0)
    with pytest.raises(ValueError, match="pp coordinate 3"):
        Mesh(pp=2).rank(0, 3, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Mesh().dp = 2
