"""How ``ringpipe plan`` presents its answer: the verdict that opens the output and the
note on what the bubble is made of (:mod:`.verdict`). The ``--plot`` bars are
:mod:`ringpipe.cli.plan_plot`."""
