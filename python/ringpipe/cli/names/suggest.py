"""Command-line errors in the user's words.

* :func:`did_you_mean`: the closest known spelling of a mistyped choice or flag (a
  prefix first, ``interleaved`` → ``interleaved-1f1b``; then :mod:`difflib`'s ratio,
  ``1fb1`` → ``1f1b``);
* :func:`plain_message`: an error raised below the command line, as the user should read
  it: without the command's name repeated (``ringpipe calibrate: ringpipe calibrate:``)
  and with the library's parameter names (``num_microbatches``, ``chunks_per_rank``)
  replaced by the flags the user typed (:data:`FLAG_FOR`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["FLAG_FOR", "did_you_mean", "plain_message"]

#: Library parameter name -> the flag that sets it, per command (``None``: any command).
FLAG_FOR: dict[str, dict[str | None, str]] = {
    "num_microbatches": {None: "--microbatches"},
    "chunks_per_rank": {None: "--stages-per-rank"},
    "num_ranks": {"schedule": "--pipeline-ranks", None: "--pp"},
    "microbatch_size": {None: "--microbatch-size"},
    "global_batch": {"verify": "--batch", None: "--global-batch"},
}


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """The known spelling ``word`` most likely meant, or None when none is close."""
    known = [str(k) for k in known]
    prefixed = sorted(k for k in known if k.lower().startswith(word.lower()) and k != word)
    if word and prefixed:
        return prefixed[0]
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def unknown_flags_message(extras: list[str], known_flags: Iterable[str]) -> str:
    """``unrecognized arguments: ...``, with a suggestion for the first unknown flag."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    flag = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
    guess = None
    if flag and flag.startswith("--"):  # compared without the dashes every flag shares
        guess = did_you_mean(flag[2:], [f[2:] for f in known_flags if f.startswith("--")])
    return message + (f" (did you mean --{guess}?)" if guess else "")


def plain_message(message: str, where: str) -> str:
    """``message`` without a leading ``where:`` (the caller adds it once) and with the
    library's parameter names replaced by the command's flags (module docstring)."""
    while message.startswith(f"{where}: "):
        message = message[len(where) + 2:]
    if message.startswith(f"{where} -"):  # "ringpipe calibrate --backend cupy: ..."
        message = message[len(where) + 1:]
    command = where.split()[1] if len(where.split()) > 1 else None

    def flag(match: re.Match[str]) -> str:
        flags = FLAG_FOR[match.group(1)]
        return flags.get(command, flags[None])

    pattern = r"(?<![\w.·-])(" + "|".join(map(re.escape, FLAG_FOR)) + r")(?=[:\s(=]|$)"
    return re.sub(pattern, flag, message)
