"""Keeping the model busy in ``carlib eval``: samples read ahead by DataLoader workers, CRF run in worker processes.

The recurrence needs the model; reading and decoding the next images and the
dense CRF of the previous ones do not. :func:`read_ahead` yields samples that
``workers`` processes have read while the model worked, and
:class:`PostProcessPool` runs :func:`carlib.car.post_process` jobs in other
processes while the main one starts the next image. Results come back in
submission order, so the output does not depend on the number of workers.
With ``workers=0`` everything runs inline, as a plain loop.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch

from carlib.car import PostJob, post_process
from carlib.post_stages import PostStage, build_post_stage
from carlib.precision import AMP_CHOICES, autocast_for  # noqa: F401 (where the evaluation has always found them)


def default_workers(device: torch.device | str) -> int:
    """Worker processes for reading and CRF: on GPU half the cores, at most 4; on CPU none.

    On CPU the models already keep every core busy, so workers only compete
    with them: on 2 cores, 60 ShapesWorld scenes took 14.4 s in one process and
    22.5 s with one worker (docs/benchmarks.md).
    """
    if torch.device(device).type == "cpu":
        return 0
    return min(4, (os.cpu_count() or 1) // 2)


class _Reads(torch.utils.data.Dataset):
    """The samples of ``ids`` as ``(item, loaded, error)``: a read failure is a value, not a crashed worker."""

    def __init__(self, load: Callable[[Any], Any], items: Sequence[Any], error_type: type[Exception]):
        self.load, self.items, self.error_type = load, list(items), error_type

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            return item, self.load(item), None
        except self.error_type as error:
            return item, None, str(error)


def _as_is(sample):
    return sample


def read_ahead(load: Callable[[Any], Any], items: Sequence[Any], error_type: type, workers: int) -> Iterator:
    """``(item, load(item), None)`` or ``(item, None, message)`` for each item in order, read by ``workers`` processes.

    Arguments:
        load: reads one item (a dataset's ``load``); must be picklable with its object.
        items: what to read, in order.
        error_type: the exception a bad sample raises (reported, not raised).
        workers: DataLoader worker processes (0: read in this process).
    """
    loader = torch.utils.data.DataLoader(
        _Reads(load, items, error_type),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
    yield from loader


def _post_process_all(jobs: list[PostJob], stages: list[PostStage]) -> list[tuple[Any, float]]:
    """Each job's masks (by the stage beside it) and the seconds its post-processing took."""
    results = []
    for job, stage in zip(jobs, stages, strict=True):
        start = time.perf_counter()
        masks = post_process(job, stage)
        results.append((masks, time.perf_counter() - start))
    return results


def _start_worker() -> None:
    # Ctrl-C reaches every process of the terminal's group: the main process ends the pool, quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


class PostProcessPool:
    """Runs post-processing jobs (the CRF) in ``workers`` processes, handing results back in submission order.

    Use as a context manager. :meth:`submit` queues the jobs of one sample
    with a callback to run on their masks; at most ``2 x workers`` samples are
    in flight (the oldest is completed first), so memory stays bounded.
    With ``workers=0``, or for a stage that is not
    :attr:`~carlib.post_stages.PostStage.runs_in_workers` (SAM: its model lives
    in this process), jobs run inline at submission. A stage sent to the
    workers is pickled with each sample's jobs.

    Arguments:
        workers: worker processes (0: inline).
        post: the :class:`carlib.post_stages.PostStage` of every job (``car.post_stage()``);
            None: the one each job's ``settings.post`` names (no SAM: it needs a region source).

    Attributes:
        stage: the stage given, or None.
    """

    def __init__(self, workers: int, post: PostStage | None = None) -> None:
        self.workers = workers
        self.stage = post
        self._executor: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[Future, Callable]] = deque()

    def __enter__(self) -> PostProcessPool:
        if self.workers:
            # spawn, not fork: a forked copy of a process that has run OpenMP kernels can hang in them.
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
        return self

    def submit(self, jobs: list[PostJob], then: Callable[[list[tuple[Any, float]]], None]) -> None:
        """Post-process ``jobs`` (one sample's); call ``then([(masks, seconds), ...])`` when done, in order."""
        executor = self._executor
        stages = [self.stage_for(job) for job in jobs]
        if executor is None or not all(stage.runs_in_workers for stage in stages):
            self.drain()
            then(_post_process_all(jobs, stages))
            return
        self._pending.append((executor.submit(_post_process_all, jobs, stages), then))
        while len(self._pending) > 2 * self.workers:
            self._complete_oldest()

    def stage_for(self, job: PostJob) -> PostStage:
        """The stage that post-processes ``job``: the pool's, else the one its settings name."""
        if self.stage is not None:
            return self.stage
        return build_post_stage(job.settings.post)

    def drain(self) -> None:
        """Complete every job in flight."""
        while self._pending:
            self._complete_oldest()

    def _complete_oldest(self) -> None:
        future, then = self._pending.popleft()
        then(future.result())

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is None:
                self.drain()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
