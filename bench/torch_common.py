"""bench/torch_common.py — what the PyTorch references of the benchmarks share
(bench/torch_gpt2.py, bench/torch_llama.py): timing repetitions, the report of which
BLAS library, OpenBLAS core and allocator the process really loaded (which bench/run.sh
checks before it accepts a "best setup" run) and the training step's report lines.
Benchmark-only; not part of the product."""
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


def report_setup(torch, label, extra=""):
    """Print the process's PyTorch, BLAS and allocator, with their RESULT lines."""
    blas, core, tc = loaded_libs()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, BLAS {blas or '?'} "
          f"(core {core or '?'}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}),"
          f" tcmalloc {'yes' if tc else 'no'}{extra}")
    print(f"RESULT\t{label}.blas_core\t{core or 'unknown'}\tname")
    print(f"RESULT\t{label}.blas_build\t{blas_build(blas)}\tname")
    print(f"RESULT\t{label}.tcmalloc\t{1 if tc else 0}\tflag")


def report_train(label, B, T, flops, med, best):
    """Print the timed training step (median and best of the repetitions)."""
    print(f"  train {B}x{T} (fwd+bwd): median {med * 1e3:.1f} ms (min {best * 1e3:.1f}), "
          f"{B * T / med:.0f} tokens/s, {flops / med / 1e9:.1f} GFLOP/s")
    print(f"RESULT\t{label}.train_ms\t{med * 1e3:.3f}\tms")
    print(f"RESULT\t{label}.train_min_ms\t{best * 1e3:.3f}\tms")
    print(f"RESULT\t{label}.train_tok_s\t{B * T / med:.3f}\ttokens/s")
    print(f"RESULT\t{label}.train_gflops\t{flops / med / 1e9:.3f}\tGFLOP/s")
