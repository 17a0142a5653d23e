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
        Mesh().group("xp", 0)
    with pytest.raises(ValueError, match="pp coordinate 3"):
        Mesh(pp=2).rank(0, 3, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Mesh().dp = 2


@given(sizes, st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4))
def test_four_axes_round_trip_and_partition(dp, pp, cp, tp, ep):
    if (dp * cp) % ep:
        return
    mesh = Mesh(dp=dp, pp=pp, tp=tp, cp=cp, ep=ep)
    assert mesh.world == dp * pp * cp * tp and mesh.etp == tp
    assert mesh.edp == dp * cp // ep
    import numpy as np
    grid = np.arange(mesh.world).reshape(dp, pp, cp, tp)  # the documented rank order
    for r in range(mesh.world):
        c = mesh.coord(r)
        assert mesh.rank(*c) == r and grid[c.dp, c.pp, c.cp, c.tp] == r
    for axis, size in (("dp", dp), ("pp", pp), ("cp", cp), ("tp", tp), ("dp_cp", dp * cp),
                       ("ep", ep), ("edp", dp * cp // ep), ("etp", tp)):
        groups = mesh.groups(axis)
        assert sorted(r for g in groups for r in g) == list(range(mesh.world))
        assert all(len(g) == size for g in groups)
        for g in groups:
            assert all(mesh.group(axis, r) == g for r in g)
    for r in range(mesh.world):  # an EP group is inside one DP×CP group, one TP rank
        assert set(mesh.group("ep", r)) <= set(mesh.group("dp_cp", r))
        assert set(mesh.group("edp", r)) <= set(mesh.group("dp_cp", r))
        assert [mesh.expert_coord(m).ep for m in mesh.group("ep", r)] == list(range(ep))


def test_cp_sits_between_tp_and_pp_and_ep_is_carved_from_dp_cp():
    mesh = Mesh(dp=2, pp=2, cp=2, tp=2, ep=2)
    assert mesh.coord(5) == Coord(0, 1, 1, 0) and mesh.rank(0, 1, 1, 0) == 5
    assert mesh.group("tp", 5) == (4, 5)
    assert mesh.group("cp", 5) == (5, 7)
    assert mesh.group("pp", 5) == (1, 5)
    assert mesh.group("dp", 5) == (5, 13)
    assert mesh.group("dp_cp", 5) == (5, 7, 13, 15)
    assert mesh.group("ep", 5) == (5, 7) and mesh.group("edp", 5) == (5, 13)
    assert Mesh(dp=4, tp=2, ep=4).group("ep", 1) == (1, 3, 5, 7)  # EP across replicas
    assert Mesh(dp=2, cp=2, ep=1).group("edp", 0) == (0, 1, 2, 3)
    assert Mesh(dp=2, tp=2, etp=1, ep=4).group("ep", 0) == (0, 1, 2, 3)
    assert str(mesh) == "dp2 x pp2 x cp2 x tp2 (ep2 x etp2)"
    assert str(Mesh(dp=2, pp=2, tp=2)) == "dp2 x pp2 x tp2"
    assert mesh.cp_enabled and mesh.ep_enabled and not Mesh().cp_enabled


def test_expert_parallelism_must_fit_the_pipeline_position():
    with pytest.raises(ValueError, match="ep × etp = 3 × 1 does not divide"):
        Mesh(dp=2, ep=3)
    with pytest.raises(ValueError, match="cp must be >= 1"):
        Mesh(cp=0)
