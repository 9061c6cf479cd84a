"""`StageTimes`: the seconds each stage of embed took (`embed --profile`), for both engines: the batched model
of pipeline.py and the pooled k-mer path of pooled.py. No torch here (embed with a k-mer-only model starts
without it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

STAGES = ("scan", "read", "windows", "batch", "model", "wait", "pool", "write")
_STAGE_HELP = {
    "scan": "first pass: record lengths (progress bar, shards)",
    "read": "FASTA reading, parsing, tokenising",
    "windows": "cutting windows, N counts",
    "batch": "gathering windows into token batches",
    "model": "encoder + head (on a GPU: launching them, uploads; with worker threads: handing batches over; "
             "pooled path: k-mer counts and window sums)",
    "wait": "waiting for the GPU's or the worker threads' results",
    "pool": "pooling records, window vectors (pooled path: the head, once per record)",
    "write": "HDF5 writing",
}


@dataclass
class StageTimes:
    """Seconds spent in each pipeline stage (`embed --profile`). With prefetch, read and windows run in the
    prefetch thread (overlapped with the rest) and `read` in the main thread is its wait for it; with batch
    worker threads, `model` in them is their summed time and `wait` the main thread's wait for them."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    worker: dict[str, float] = field(default_factory=dict)  # stage -> seconds in other threads (prefetch, workers)
    start: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t

    def report(self, bp: int, wall: float | None = None) -> list[str]:
        """Lines of a table: stage, seconds, share of the wall time, and the rate of that stage alone."""
        wall = wall if wall is not None else time.perf_counter() - self.start
        rows = [(s, self.seconds[s], _STAGE_HELP[s]) for s in STAGES]
        rows += [(f"{s} (worker threads, overlapped)", v, "the model's work, summed over the threads") if s == "model"
                 else (f"{s} (prefetch thread, overlapped)", v, _STAGE_HELP[s]) for s, v in self.worker.items()]
        rows.append(("other", max(0.0, wall - sum(self.seconds.values())), "the rest (Python glue, progress)"))
        out = [f"{'stage':<36} {'seconds':>9} {'share':>7} {'Mbp/s alone':>12}  what"]
        for name, secs, what in rows:
            rate = f"{bp / secs / 1e6:12.1f}" if secs > 0 else f"{'-':>12}"
            out.append(f"{name:<36} {secs:9.2f} {100 * secs / max(wall, 1e-9):6.1f}% {rate}  {what}")
        out.append(f"{'wall':<36} {wall:9.2f} {100.0:6.1f}% {bp / max(wall, 1e-9) / 1e6:12.1f}  {bp:,} bp")
        return out


def _timed_iter(items: Iterable, times: StageTimes | None, stage: str, into: dict | None = None) -> Iterator:
    """items, with the time spent producing each one added to times[stage] (or to `into`)."""
    it = iter(items)
    acc = into if into is not None else (times.seconds if times is not None else None)
    while True:
        t = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            if acc is not None:
                acc[stage] = acc.get(stage, 0.0) + time.perf_counter() - t
        yield item
