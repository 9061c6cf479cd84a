"""Micro-batches drawn ahead of the model: sampler processes (forked, so the genomes are shared, not copied)
or one background thread. A micro-batch is a function of (seed, rank, step, micro), so how many workers draw
them never changes what is drawn.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np


def default_workers(world: int = 1) -> int:
    """Sampler processes per rank: none on a small machine (the 2-core CI box: a thread is enough for a
    CPU-bound model), else half of this rank's share of the cores, up to 6 -- the sampler is ~0.05-0.1 s
    of numpy per 64-item batch and must keep up with a GPU."""
    n = (os.cpu_count() or 1) // max(1, world)
    return 0 if n <= 4 else min(6, n // 2)


class Prefetcher:
    """Draws micro-batches ahead of the model, in order: `workers` processes (forked, so the genomes are
    shared, not copied), or one background thread when workers = 0. Batches are a function of
    (step, micro), so how many workers draw them never changes what is drawn."""

    def __init__(self, args: tuple, keys, workers: int) -> None:
        self.keys = iter(keys)
        if workers > 0:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_worker_init, initargs=args)
            self.fn, self.depth = _worker_fetch, 2 * workers
        else:
            self.pool = ThreadPoolExecutor(1)
            self.fn, self.depth = (lambda s, m: _fetch(*args, s, m)), 2
        self.queue: collections.deque = collections.deque()
        self._fill()

    def _fill(self) -> None:
        while len(self.queue) < self.depth:
            key = next(self.keys, None)
            if key is None:
                return
            self.queue.append(self.pool.submit(self.fn, *key))

    def next(self):
        data = self.queue.popleft().result()
        self._fill()
        return data

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_WORKER_ARGS: tuple = ()


def _worker_init(*args) -> None:
    global _WORKER_ARGS
    _WORKER_ARGS = args


def _worker_fetch(step: int, micro: int):
    return _fetch(*_WORKER_ARGS, step, micro)


def _fetch(sampler, pair_data, sc, tc, rank, step, micro):
    """CPU side of a micro-batch (runs in a worker thread, ahead of the GPU)."""
    batch = sampler.batch(step, micro) if sampler is not None else None
    pb = None
    if pair_data is not None:
        rng = np.random.default_rng([tc.seed, rank, step, micro, 1])
        pb = pair_data.batch(rng, sc.batch_size, sc.window, sc.max_windows)
    return batch, pb
