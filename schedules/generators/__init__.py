"""Schedule generators: each builds one schedule family's per-rank action lists
(GPipe, 1F1B, interleaved 1F1B, ZB-H1, ZB-V, DualPipeV, and the forward-only decode schedule).
"""
