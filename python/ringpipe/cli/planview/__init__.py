"""How ``ringpipe plan`` presents its answer: the verdict that opens the output
(:mod:`.verdict`) and the stacked step-time bars of ``--plot`` (:mod:`.bars`)."""
