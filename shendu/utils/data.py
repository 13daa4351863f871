"""``shendu.utils.data``: torch.utils.data's names (``from shendu.utils.data import DataLoader``).

The datasets, samplers and loader live in ``shendu.data``; this module is their torch path.
"""
from shendu.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset,
                                 TensorDataset, random_split)
from shendu.data.loader import DataLoader, default_collate, default_convert
from shendu.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                 SubsetRandomSampler, WeightedRandomSampler)
from shendu.data.workers import WorkerInfo, get_worker_info
from shendu.distributed.sampler import DistributedSampler  # needs no MPI until a rank is asked

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
           "DistributedSampler", "IterableDataset", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset",
           "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert",
           "get_worker_info", "random_split"]
