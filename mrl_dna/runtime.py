"""How a run uses the machine: torch's thread count (`--threads`; 0 = auto: the cores other processes leave
free), how embedding spends it (`batch_threads`: whole batches in worker threads, each op on one thread, so
that no vector depends on the count) and glibc's allocator (kept from handing big blocks back to the OS
between batches).

Both were measured on the project's 2-core VM (bench/HISTORY.md, issue 16):
- OpenMP threads beyond the free cores run several times slower than fewer threads (2 threads on a machine
  whose other core was busy embedded at 40 kbp/s, 1 thread at 231 kbp/s), so auto counts the cores that
  are idle over a short sample of /proc/stat before the work starts, within the process's CPU affinity and
  cgroup quota, and divides them among torchrun's local ranks;
- torch's CPU tensors come from malloc; glibc serves blocks above its mmap threshold (at most 32 MiB,
  raised as blocks are freed) by mmap and trims the heap above 2x that threshold, so every batch's
  activations were fresh pages: ~25k page faults per 2 kb x 32-window batch, a quarter to a third of the
  default model's CPU time in the kernel. `tune_allocator` raises both thresholds once per process.
torch is imported only inside set_threads (layer 0 stays light: `--help` never imports torch).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Iterator

from mrl_dna.console import warn

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks below this come from the heap and stay in the process when freed (at the default batch size the
# largest activation is ~32 MiB; a record's tokens of a 100 Mbp chromosome, 100 MB, still go to mmap).
MMAP_THRESHOLD = 64 << 20
# Free memory at the top of the heap kept instead of trimmed: a few batches' worth of activations.
TRIM_THRESHOLD = 512 << 20
# How long auto threads watches the CPUs before the work starts.
_SAMPLE_SECONDS = 0.1

_tuned = False


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds (MMAP_THRESHOLD, TRIM_THRESHOLD) so that freed batch
    activations are reused instead of unmapped and faulted in again. Once per process; False where there is
    no glibc (other platforms: nothing to do). Numbers are unchanged (torch aligns every CPU tensor to 64
    bytes wherever it comes from): only page faults go away."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: no mallopt
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def busy_cpus(seconds: float = _SAMPLE_SECONDS) -> float:
    """CPUs' worth of work other processes did over `seconds` (from /proc/stat; this process is idle
    meanwhile); 0.0 where /proc/stat is not readable."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle  # user nice system idle iowait irq softirq steal

    try:
        t1, i1 = sample()
        time.sleep(seconds)
        t2, i2 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = t2 - t1
    if total <= 0:
        return 0.0
    return (total - (i2 - i1)) / total * (os.cpu_count() or 1)


def auto_threads() -> tuple[int, str]:
    """(threads, why): the available CPUs minus those busy with other processes (rounded), shared among
    torchrun's local ranks, at least 1."""
    cpus = available_cpus()
    busy = min(float(cpus), busy_cpus())
    free = max(1, cpus - round(busy))
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    threads = max(1, free // ranks)
    why = (f"{cpus} CPU{'s' if cpus != 1 else ''}, {busy:.1f} busy with other processes"
           + (f", {ranks} local ranks" if ranks > 1 else ""))
    return threads, why


# Why auto chose fewer threads than the machine has, for a command's one-line summary ("" when it did not):
# printed on a line of its own it came before every error line, and only when the machine was busy.
_note = ""


def thread_note() -> str:
    """'1 thread: 2 CPUs, 1.0 busy with other processes; --threads N to choose' after an auto choice below the
    machine's CPUs, else ''."""
    return _note


def clamp_threads(threads: int, option: str = "--threads") -> int:
    """`threads`, at most available_cpus(): more threads than CPUs ran ~100x slower (issue 22: --threads 999 on
    2 cores), never faster, so a larger count is cut to the CPUs with a warning that says so."""
    cpus = available_cpus()
    if threads > cpus:
        warn(f"{option} {threads} is more than the {cpus} CPU{'s' if cpus > 1 else ''} this process may use "
             f"(oversubscribed threads run many times slower); using {cpus}")
        return cpus
    return threads


def pick_threads(threads: int = 0) -> int:
    """The thread count of `--threads N` without importing torch: `threads` at most the CPUs (clamp_threads), or
    with 0 auto_threads() (OMP_NUM_THREADS when set); remembered for chosen_threads(). set_threads gives it to
    torch; embed's pooled k-mer path (torch-free) runs that many counting threads."""
    global _note, _chosen
    _note = ""
    if not threads:
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) > 0:
            _chosen = int(env)
            return _chosen
        threads, why = auto_threads()
        if threads < available_cpus():
            _note = f"{threads} thread{'s' if threads > 1 else ''}: {why}; --threads N to choose"
    _chosen = clamp_threads(threads)
    return _chosen


def chosen_threads() -> int:
    """The thread count to use: torch's when torch is loaded (set_threads sets it; a library caller may have),
    else what pick_threads chose, else 1."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    return _chosen or 1


_chosen = 0


def set_threads(threads: int = 0) -> int:
    """torch's thread count (and FAISS's, when it is loaded): `threads` (at most the CPUs: clamp_threads), or
    with 0 auto_threads() unless OMP_NUM_THREADS is set (then torch's own choice stands). Returns the count in
    use.

    Embedding does not split an op over these threads: it runs that many batches at once, each op of a batch
    on one thread (`batch_threads`), so its vectors are the same bits whatever the count (tests/test_embed_
    bitwise.py). Other torch work (search's products, training) runs its ops on all of them."""
    import torch  # the commands that take --threads run torch anyway

    global _chosen, _note
    if not threads and os.environ.get("OMP_NUM_THREADS"):
        _note, _chosen = "", torch.get_num_threads()
        return _chosen
    threads = pick_threads(threads)
    torch.set_num_threads(threads)
    faiss = sys.modules.get("faiss")  # None when an import of it failed (or a test blocked it)
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
    return threads


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread inside this block (a product split over threads may sum in another order):
    every OpenBLAS loaded in the process (numpy's wheels bundle one; scipy or faiss may load others) through
    its own get/set calls (~0 s); any other BLAS through threadpoolctl, whose first call scans every loaded
    library (~0.1 s: too slow for every `embed`)."""
    libs = _openblas_threads()
    if not libs:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    before = [get() for get, _ in libs]
    for _, set_ in libs:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), n in zip(libs, before):
            set_(n)


def _openblas_threads() -> list:
    """(get_num_threads, set_num_threads) of every OpenBLAS loaded in this process (numpy's among them), found
    in /proc/self/maps; [] where there is none or no /proc."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return []
    for path in paths:
        if path not in _OPENBLAS:
            _OPENBLAS[path] = _openblas_calls(path)
        if _OPENBLAS[path] is not None:
            found.append(_OPENBLAS[path])
    return found


_OPENBLAS: dict = {}  # library path -> its (get, set) or None


def _openblas_calls(path: str):
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
        get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and set_ is not None:
            get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
            return get, set_
    return None


@contextlib.contextmanager
def batch_threads() -> Iterator[int]:
    """How embedding uses torch's threads: yields the number of worker threads that each run whole batches
    (torch's thread count on entry, at most available_cpus()), and meanwhile sets torch's intra-op threads to
    one (restored on exit); each worker calls `one_op_thread` first.

    Why (issue 22): an op split over threads sums in an order that follows the thread count. Measured on the
    project's AMD EPYC with MKL: the head's (n, 2080) x (2080, 512) GEMM gives other last bits at 2 threads than
    at 1 for n = 5..11 rows (a batch of 9 windows: `--batch-tokens 18432`, `encode(batch_size=9)`), up to 3e-8
    in a stored vector; the k-mer profile (integer counts), the pooling and the normalisation were the same at
    1, 2 and 3 threads. With one thread per op a vector cannot depend on the count, on any CPU; with torch's
    ops releasing the GIL, batches in parallel kept the speed of 2 threads (bench/HISTORY.md, issue 22)."""
    import torch

    before = torch.get_num_threads()
    workers = max(1, min(before, available_cpus()))
    torch.set_num_threads(1)
    try:
        yield workers
    finally:
        torch.set_num_threads(before)


def one_op_thread() -> None:
    """A batch worker's first call (`batch_threads`): this thread's torch ops, and MKL's, run on one thread.
    torch keeps MKL's count per thread and sets it in a new thread only at its first parallel op: a worker
    whose first op was a GEMM ran it on all cores, although torch.get_num_threads() said 1 (measured)."""
    import torch

    torch.set_num_threads(1)


_BF16: bool | None = None


def fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), so that a bf16 matmul is faster than
    fp32 (measured on the project's AMD EPYC: 316 vs 73 GMAC/s at 2 threads) instead of emulated and slower.
    MRL_DNA_BF16_SCAN=0/1 overrides (tests, and a machine that reports the flag but is slow)."""
    global _BF16
    env = os.environ.get("MRL_DNA_BF16_SCAN")
    if env in ("0", "1"):
        return env == "1"
    if _BF16 is None:
        try:
            with open("/proc/cpuinfo") as f:
                flags = f.read()
        except OSError:
            flags = ""
        _BF16 = " avx512_bf16" in flags or " amx_bf16" in flags
    return _BF16
