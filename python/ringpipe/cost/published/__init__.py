"""``ringpipe.cost.published``: published measurements as data, and the accuracy reports.

The folder holds:

* ``data/*.csv`` — one file per published table, the numbers exactly as published
  (per-row configuration and what was measured). Each file starts with ``#`` lines
  giving its source (``citation``, ``short``, ``section``, ``url``, ``measured``,
  ``note``) and every column's meaning and unit (``column NAME [UNIT]: ...``):

  - ``megatron_sc21_table1.csv`` — Megatron-LM SC'21 Table 1, the only data the
    training model is fitted on;
  - ``bloom_181b_splits.csv``, ``korthikanti_2022.csv``, ``llama3_405b.csv`` — held-out
    training measurements (BigScience BLOOM-181B splits, Korthikanti et al. 2022,
    Llama 3 405B);
  - ``llama3_405b_long_context.csv``, ``nemo_long_sequence.csv``,
    ``megatron_bridge_h100.csv``, ``deepseek_v3_report.csv`` — held-out long-context,
    MoE and FP8 training measurements (:mod:`.parallel_runs`);
  - ``zero_bubble_2024.csv`` — held-out schedule comparison on one cluster (Qi et al.,
    Zero Bubble Pipeline Parallelism, ICLR 2024: 1F1B, 1F1B-I, ZB-1p, ZB-2p; throughput
    and memory per GPU);
  - ``nemo_llama2_7b.csv`` — the inference model's calibration table (NeMo Llama-2-7B);
  - ``trtllm_throughput.csv``, ``trtllm_first_token.csv`` — its out-of-sample tables
    (TensorRT-LLM performance.md).

* :mod:`.loader` — the one reader of those files: :func:`~.loader.load_table` (a file
  name or a path, and the frozen dataclass of its rows) validates a file strictly and
  returns its rows, citation and column descriptions.

* The tables as the cost model uses them, built from the loaded rows plus the wiring the
  sources describe in prose (model shapes, recipes, clusters):
  :mod:`.training_runs` (``BLOOM_SPLITS``, ``KORTHIKANTI``, ``llama3_runs``),
  :mod:`.megatron` (``TABLE_1``, ``compare``, ``calibrate``) and
  :mod:`.inference_tables` (``NEMO_LLAMA2_7B``, ``TRTLLM_THROUGHPUT``,
  ``TRTLLM_FIRST_TOKEN``, ``predictions``, ``calibrate``).

* The reports: :mod:`.validate` (``python -m ringpipe.cost.validate``: the training
  model's out-of-sample errors), :mod:`.parallel_report`
  (``python -m ringpipe.cost.published.parallel_report``: CP, EP and FP8), :mod:`.zero_bubble`
  (``python -m ringpipe.cost.published.zero_bubble``: which schedule is fastest, and peak
  memory, on one cluster) and :mod:`.inference_report` (``python -m
  ringpipe.cost.inference_report``: the inference model's accuracy tables).
"""
