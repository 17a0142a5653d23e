"""Start-up stays light: ``import ringpipe``, ``ringpipe --version`` and a small
``ringpipe schedule`` load no Numba (it loads when a kernel runs), and the package's
public names still resolve (``ringpipe.all_reduce``, ``from ringpipe import Plan``).

Wall time is not asserted here (see ``benchmarks/bench_startup.py``)."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import contextlib, io, sys
{body}
heavy = [m for m in ("numba", "ringpipe.cost", "ringpipe.runtime", "matplotlib")
         if m in sys.modules]
print("heavy:" + ",".join(heavy))
"""


def _heavy_modules(body: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("heavy:"), done.stdout
    return [m for m in last[len("heavy:"):].split(",") if m]


def test_import_ringpipe_loads_no_numba():
    assert _heavy_modules("import ringpipe") == []


def test_version_loads_no_numba():
    body = ("from ringpipe.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "    main(['--version'])\nassert out.getvalue().startswith('ringpipe ')")
    assert _heavy_modules(body) == []


def test_small_schedule_command_loads_no_numba_and_no_cost_model():
    body = ("from ringpipe.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    status = main(['schedule', '1f1b', '--stages', '2', '--microbatches', '2'])\n"
            "assert status == 0 and 'bubble' in out.getvalue(), out.getvalue()")
    assert _heavy_modules(body) == []


def test_public_api_is_unchanged():
    import ringpipe

    expected = {"Batch", "CudaTuning", "KernelTuning", "Mesh", "PersistentAllReduce",
                "ModelConfig", "Plan", "PlanResult", "StepTable", "all_gather", "all_reduce",
                "all_reduce_init", "all_to_all", "broadcast", "chunk_bounds", "init_params",
                "reduce", "reduce_scatter", "reference_forward_backward"}
    assert set(ringpipe.__all__) == expected == set(ringpipe._EXPORTS)
    from ringpipe.collectives.api import all_reduce
    from ringpipe.plan.training import Plan

    assert ringpipe.all_reduce is all_reduce and ringpipe.Plan is Plan
    assert expected <= set(dir(ringpipe))
    namespace: dict = {}
    exec("from ringpipe import *", namespace)  # noqa: S102 - the star import itself
    assert expected <= set(namespace)
    try:
        ringpipe.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("ringpipe.no_such_name resolved")
