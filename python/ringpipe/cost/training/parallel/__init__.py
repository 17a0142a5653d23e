"""What context parallelism, expert parallelism and FP8 add to a training step's price.

* :mod:`.groups`: where a configuration's groups sit on the cluster (GPU indices, node
  crossings; ringpipe's or Megatron-core's placement);
* :mod:`.context`: the ring attention's exposed K/V exchange;
* :mod:`.experts`: a MoE layer's router, all-to-alls and grouped expert GEMMs;
* :mod:`.fp8`: Transformer Engine's FP8 recipe (rates, casts, copies);
* :mod:`.space`: the search's cp, ep and etp options;
* :mod:`.explain`: what CP or EP buys against the best layout without it.
"""
