"""``--layout`` and ``--split``: how the layers are laid out over the pipeline stages.

Shared by ``ringpipe verify`` (and its MPI ranks) and ``ringpipe plan``:

* ``--layout "E,t*3|t*4|t*4|t*2,L"``: an explicit layout in Megatron-core's
  ``--pipeline-model-parallel-layout`` syntax (:mod:`ringpipe.plan.layout`: ``E``
  embedding, ``t`` transformer layer, ``L`` output layer and loss, ``|`` between the
  p·v stages in stage order);
* ``--split even|balanced``: the even split, or the balanced one
  (:mod:`ringpipe.plan.balance`). ``verify`` defaults to even; ``plan`` searches both
  unless one is given.
"""

from __future__ import annotations

import argparse

from ringpipe.plan.layout import SPLITS, PipelineLayout

__all__ = ["add_layout_arguments", "parse_layout"]


def add_layout_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                         split_default: str | None) -> None:
    """Add ``--layout`` and ``--split`` (default ``split_default``; None: search)."""
    parser.add_argument("--layout", default=None, metavar="LAYOUT",
                        help="stage layout in Megatron's --pipeline-model-parallel-layout "
                             "syntax, e.g. 'E,t*3|t*4|t*4|t*2,L' (E embedding, t layer, L "
                             "output layer and loss, | between stages)")
    what = f"default {split_default}" if split_default else "default: search both"
    parser.add_argument("--split", choices=SPLITS, default=split_default,
                        help=f"layer split over the stages: even, or balanced (embedding, "
                             f"head and loss weighed in; {what})")


def parse_layout(args: argparse.Namespace) -> PipelineLayout | None:
    """The ``--layout`` of ``args`` (None without one); ValueError for a malformed one,
    or one given with a ``--split`` other than the default."""
    text = getattr(args, "layout", None)
    if text is None:
        return None
    if getattr(args, "split", None) not in (None, "even"):
        raise ValueError("--layout and --split balanced contradict (the layout fixes the "
                         "split)")
    return PipelineLayout.parse(text)
