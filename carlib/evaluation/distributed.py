"""One process's place in a ``torchrun`` job, for the commands that shard their work over ranks.

``carlib eval`` and ``carlib segment`` on a folder both sort their items and
take every world-size-th one from the rank (:meth:`Distributed.shard`), so
the same images land on the same ranks in both; rank 0 merges what the
others send back. Without ``torchrun`` it is rank 0 of 1 and does nothing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    initialised: bool = False

    @classmethod
    def from_environment(cls) -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), initialised=True)

    def shard(self, items: list) -> list:
        return items[self.rank :: self.world_size]

    def sum_array(self, array: np.ndarray) -> np.ndarray:
        if not self.initialised:
            return array
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def gather(self, items: list) -> list:
        if not self.initialised:
            return items
        import torch.distributed as dist

        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, items)
        return [item for part in gathered for item in part]

    def close(self) -> None:
        if self.initialised:
            import torch.distributed as dist

            # Called from `finally`: after an error or an interrupt (Ctrl-C reaches every rank) the other
            # ranks may be anywhere, and a barrier would wait for them until gloo's 30-minute timeout.
            if sys.exc_info()[0] is None:
                dist.barrier()
            dist.destroy_process_group()
