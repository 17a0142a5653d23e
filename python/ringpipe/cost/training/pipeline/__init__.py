"""The pipeline's side of a training step, priced: the schedule simulator's timing and
per-rank memory (:mod:`.simulator`), each stage's costs and bytes (:mod:`.stages`), the
balanced split (:mod:`.split`), the synthesised schedule (:mod:`.synth`) and the schedules,
v and splits the search tries per pp (:mod:`.options`)."""
