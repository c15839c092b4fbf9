"""bench/torch_common.py — what the PyTorch references of the benchmarks share
(bench/torch_gpt2.py, bench/torch_llama.py): timing repetitions and the report of which
BLAS library, OpenBLAS core and allocator the process really loaded, which bench/run.sh
checks before it accepts a "best setup" run. Benchmark-only; not part of the product."""
import ctypes
import os
import statistics
import time


def time_reps(fn, reps):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), min(out)


def loaded_libs():
    """(blas path, openblas core or '', tcmalloc loaded?) from this process's mappings."""
    blas, tc = "", False
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1] if len(line.split()) >= 6 else ""
            if "tcmalloc" in p:
                tc = True
            if not blas and ("openblas" in p or "libblas" in p):
                blas = p
    core = ""
    if blas:
        try:
            lib = ctypes.CDLL(blas)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            core = ""
    return blas, core, tc


def blas_build(path):
    """Which OpenBLAS build a loaded BLAS library is: openmp, pthread, serial, or its
    file name (bench/run.sh accepts a "best" run only with the OpenMP one)."""
    for build in ("openmp", "pthread", "serial"):
        if f"openblas-{build}" in path:
            return build
    return os.path.basename(path) or "none"
