"""Ctrl-C at any moment of a ``ringpipe`` command's start-up ends it with exit 130 and
the one line ``error: interrupted``, never a KeyboardInterrupt traceback (a Ctrl-C while
NumPy and Numba were being imported printed 30 lines).

Each run goes through the real console script under ``python -X importtime``, whose
import lines (filtered out of stderr) say when ``ringpipe.cli.exits`` has been imported:
the moments below count from there, the first line of ringpipe's own code (it installs
the handler next, before anything slow). Before it -- the interpreter's own start-up and
the few milliseconds of finding the package -- a Ctrl-C is the interpreter's to report.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                                reason="POSIX signals")

#: Seconds after ringpipe's first module at which SIGINT arrives: during the import of
#: the command line, of NumPy and Numba, of the schedules, and during the work.
MOMENTS = (0.002, 0.01, 0.03, 0.06, 0.1, 0.2, 0.35, 0.5)
#: A command whose imports and work take well over a second.
COMMAND = ["schedule", "zb-v", "-p", "32", "-m", "2048", "--format", "json"]


def _entry() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "ringpipe")
    if os.path.exists(script) or shutil.which("ringpipe"):
        return [script if os.path.exists(script) else shutil.which("ringpipe")]
    return ["-m", "ringpipe"]


def _interrupt_after_startup(delay: float, tmp_path) -> tuple[int, str, str]:
    out_path = tmp_path / f"out-{delay}.txt"
    with open(out_path, "w") as sink:  # a file, not a pipe: nothing can block on it
        proc = subprocess.Popen([sys.executable, "-X", "importtime", *_entry(), *COMMAND],
                                stdout=sink, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:  # until ringpipe's first module is imported
            seen.append(line)
            if line.rstrip().endswith(" ringpipe.cli.exits"):
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    out = out_path.read_text()
    lines = [line for line in "".join(seen).splitlines() + err.splitlines()
             if not line.startswith("import time:")]
    return proc.returncode, out, "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("delay", MOMENTS)
def test_ctrl_c_during_startup_is_one_line_and_130(delay, tmp_path):
    status, out, err = _interrupt_after_startup(delay, tmp_path)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not out, "the command finished before the signal: make it longer"
    assert status == 130, (status, err)
    assert err == "error: interrupted", err


def test_an_import_broken_by_ctrl_c_is_still_an_interrupt(monkeypatch, capsys):
    """A Ctrl-C inside a C extension's import surfaces as ImportError (NumPy's
    'PyCapsule_Import could not import module "datetime"'): still one line and 130."""
    import ringpipe.cli as cli

    def interrupted_import(args, limits):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            raise ImportError('PyCapsule_Import could not import module "datetime"') from None

    monkeypatch.setattr(cli, "check_command", interrupted_import)
    assert cli.main(["schedule", "1f1b", "-p", "2", "-m", "2"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_import_error_without_ctrl_c_is_an_internal_error(monkeypatch, capsys):
    import ringpipe.cli as cli

    def broken_import(args, limits):
        raise ImportError("some module is broken")

    monkeypatch.setattr(cli, "check_command", broken_import)
    assert cli.main(["schedule", "1f1b", "-p", "2", "-m", "2"]) == 1
    assert "internal error: ImportError: some module is broken" in capsys.readouterr().err
