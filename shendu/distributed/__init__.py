"""Data-parallel training over MPI (torch.distributed's names): start N processes with
``mpiexec -n N`` (or ``shendu train --nproc N``), call ``init_process_group()``, wrap the model
in ``DistributedDataParallel`` and give each rank its share of the data with
``DistributedSampler``. Needs the 'distributed' extra (mpi4py and Open MPI); importing this
package does not import mpi4py, so ``get_rank()`` is 0 in a plain single process.
"""
from shendu.distributed.comm import (DistributedError, ReduceOp, Work, all_gather, all_reduce,
                                     any_rank, average_scalars, barrier, broadcast,
                                     broadcast_coalesced, broadcast_string,
                                     destroy_process_group, get_rank, get_world_size,
                                     init_process_group, is_initialized)
from shendu.distributed.ddp import DistributedDataParallel
from shendu.distributed.sampler import DistributedSampler

__all__ = ["DistributedDataParallel", "DistributedError", "DistributedSampler", "ReduceOp",
           "Work", "all_gather", "all_reduce", "any_rank", "average_scalars", "barrier",
           "broadcast", "broadcast_coalesced", "broadcast_string", "destroy_process_group",
           "get_rank", "get_world_size", "init_process_group", "is_initialized"]
