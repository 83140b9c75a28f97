"""Strict settings for every test: float64 (accuracy is asserted), no implicit rank or dtype promotion.

The compiled programs are shared through jax's persistent compilation cache (a directory under the system's
temporary directory unless JAX_COMPILATION_CACHE_DIR is set): the suite's many processes (the CLI, the notebooks,
the benchmarks, the xdist workers) compile the same programs, and a program loaded from the cache is the one
compiled, bit for bit."""

import gc
import os
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "byoldyn-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# XLA:CPU's LLVM backend at optimisation level 1 for the programs the tests compile, here and in the processes they
# start (XLA's default, which users keep, is 2). Most of the suite's time is compiling many small distinct programs, in
# which LLVM's level-2 passes dominate: a random-number program compiles in 0.18 s instead of 0.45-0.8 s, and the
# whole suite, cold on 2 cores, took 785 s against 867-1006 s (user CPU 24.1 min against 27.6-31.3). float64 results
# are the same bits at both levels (simulate, sweep, sampled SGD: tests/test_compile_level.py); float32 ResNet steps
# round differently (2.8e-6 relative in the loss after 3 steps), as between two CPUs. XLA_FLAGS that name a level win:
# `XLA_FLAGS=--xla_backend_optimization_level=2 pytest` runs the suite at XLA's default.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=1".strip()

import jax  # noqa: E402  (after the cache's environment, which jax reads on import)
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")  # no implicit float32 <-> float64 or int -> float mixing


def random_psd(rng: np.random.Generator, n: int, *, floor: float = 0.1) -> np.ndarray:
    """A random symmetric positive-definite n x n matrix with eigenvalues >= floor."""
    A = rng.standard_normal((n, n))
    return A @ A.T / n + floor * np.eye(n)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop jax's compiled programs after each test module. Each XLA:CPU executable holds its own memory mappings;
    a serial run of the whole suite compiles enough of them to reach the kernel's limit (vm.max_map_count, 65530
    by default), where the next compile segfaults inside LLVM. A full collection then frees those that only a cycle
    still held (the collector runs rarely here, below)."""
    yield
    jax.clear_caches()
    gc.collect()


#: modules holding the suite's longest tests (30-110 s each: benchmarks at tiny size, kill-and-resume runs, the
#: figures); collected first, whole, so that under xdist they start at once and the run does not end on one of them
LONG_FIRST = ("test_nets_faults.py", "test_benchmarks_tiny.py", "test_device_bench.py", "test_multiprocess.py",
              "test_reproduce.py", "test_launch.py")


# Python's cyclic garbage collector, tuned for the test processes only (the library leaves it alone): tracing and
# compiling allocate millions of short-lived objects, and at the default thresholds (700, 10, 10) a collection of
# the oldest generation, which walks every object of jax, diffrax and flax, ran every few seconds: 4.8 s of 57 s
# in test_matrix_directpred and test_sweep_typed together. Rarer collections, and the objects alive after the
# collection frozen out of them: 0.6 s. Nothing computed changes; only when unreachable cycles are freed.
gc.set_threshold(50_000, 20, 20)


def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(session, config, items):
    first = {name: k for k, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: each module stays in one piece
