"""shendu.allocator: freed array memory is kept for the next allocation (glibc only)."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")

# page faults of allocating, touching and freeing the same 8 MB array 20 times, after a first
# round that lets glibc raise its own dynamic threshold where it would
_COUNT_FAULTS = """
import resource, sys
import shendu, numpy as np
def rounds():
    for _ in range(20):
        a = np.ones(2 * 1024 * 1024, dtype=np.float32)
        b = np.ones(3 * 1024 * 1024, dtype=np.float32)  # a different size: no exact reuse
        del a, b
rounds()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
print(shendu.allocator.tuned(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(**env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _COUNT_FAULTS], capture_output=True, text=True,
                         env={**base, **env}, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_a_step_reuses_freed_array_memory_instead_of_faulting_it_in_again():
    tuned, faults = _faults()
    # the user's own setting wins: a 128 KB mmap threshold maps and faults every array anew
    untouched, user_faults = _faults(MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    assert tuned and not untouched
    # without the policy each round maps 20 MB anew: 5,120 faults of 4 KB pages, or ~10 where
    # NumPy's madvise gets 2 MB pages (each zeroed by the kernel)
    assert user_faults >= 20 * 5, user_faults
    assert faults < user_faults / 10, (faults, user_faults)
