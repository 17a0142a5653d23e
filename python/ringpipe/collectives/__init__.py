"""The collectives API: all-reduce and friends over in-process ranks, and persistent handles.

* :mod:`.api`: ``all_reduce``, ``reduce_scatter``, ``all_gather``, ``broadcast`` and
  ``reduce`` over one array per rank;
* :mod:`.all_to_all`: ``all_to_all``, the pairwise-exchange step table;
* :mod:`.persistent`: :func:`all_reduce_init`, check and bind once, start many times;
* :mod:`.dispatch`: the argument check and executor dispatch both share;
* :mod:`.checks`: the argument checks (rank, argument and problem named);
* :mod:`.choice`: ``algorithm="auto"``: the cheapest algorithm for a cost model.
"""

from ringpipe.collectives.all_to_all import all_to_all
from ringpipe.collectives.api import all_gather, all_reduce, broadcast, reduce, reduce_scatter
from ringpipe.collectives.persistent import PersistentAllReduce, all_reduce_init

__all__ = ["PersistentAllReduce", "all_gather", "all_reduce", "all_reduce_init", "all_to_all",
           "broadcast", "reduce", "reduce_scatter"]
