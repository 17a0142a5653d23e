"""Familiar names on the command line: the spellings users bring from other tools
(Megatron-LM's flags, PyTorch's schedule classes, nccl-tests' options) accepted as
aliases (:mod:`.aliases`), and errors worded in the user's terms (:mod:`.suggest`: "did
you mean", the flag a user typed rather than the library's parameter name)."""
