import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

# SHENDU_TEST_DEVICE=cuda: every tensor the tests create without device= lands on the GPU
# (shendu.set_default_device); torch on the CPU stays the oracle, with float32 tolerances
# (tests/oracle.py). Without CuPy and a GPU the run stops at once with one message.
DEVICE = os.environ.get("SHENDU_TEST_DEVICE", "cpu")


def pytest_configure(config):
    import shendu
    if DEVICE not in ("cpu", "cuda"):
        raise pytest.UsageError(f"SHENDU_TEST_DEVICE={DEVICE!r}: expected 'cpu' or 'cuda'")
    if DEVICE == "cuda" and not shendu.cuda_available():
        raise pytest.UsageError("SHENDU_TEST_DEVICE=cuda needs CuPy and an NVIDIA GPU "
                                "(pip install 'shendu[gpu]'); neither CuPy nor a GPU was found")
    shendu.set_default_device(DEVICE)


def pytest_report_header(config):
    return f"shendu test device: {DEVICE} (set SHENDU_TEST_DEVICE=cuda for the GPU)"
