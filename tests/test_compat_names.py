"""torch's top-level names on shendu: device, accelerator, cuda, threads, legacy constructors."""
import numpy as np
import pytest
import torch

import shendu


@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:1",), ("cuda", 0), ("cpu", 0),
                                  ("cpu:0",)])
def test_device_fields_str_repr_match_torch(args):
    ours, theirs = shendu.device(*args), torch.device(*args)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert str(ours) == str(theirs) and repr(ours) == repr(theirs)
    assert shendu.device(ours) == ours and hash(shendu.device(*args)) == hash(ours)


def test_device_equality_follows_torch():
    pairs = [(("cuda", 0), ("cuda:0",)), (("cuda",), ("cuda:0",)), (("cpu",), ("cpu", 0)),
             (("cpu",), ("cpu",)), (("cuda:1",), ("cuda:2",))]
    for a, b in pairs:
        assert (shendu.device(*a) == shendu.device(*b)) == (torch.device(*a) == torch.device(*b))


@pytest.mark.parametrize("args, kind, match", [
    (("tpu",), RuntimeError, "device type"), (("CPU",), RuntimeError, "device type"),
    (("cpu:x",), RuntimeError, "invalid device string"), (("cuda", -1), RuntimeError,
                                                          "must not be negative"),
    (("cpu", 1.5), TypeError, "index must be int"), ((3,), TypeError, "expected a string")])
def test_device_rejects_bad_specs(args, kind, match):
    with pytest.raises(kind, match=match):
        shendu.device(*args)
    with pytest.raises((RuntimeError, TypeError)):
        torch.device(*args)


def test_device_is_accepted_where_a_device_is():
    cpu = shendu.device("cpu")
    t = shendu.tensor([1.0, 2.0], device=cpu)
    assert t.device == cpu and t.device.type == "cpu" and repr(t.device) == "device(type='cpu')"
    assert t.to(cpu).device == cpu and shendu.zeros(2, device=cpu).device.type == "cpu"
    model = shendu.nn.Linear(2, 1).to(cpu)
    assert model.weight.device.type == torch.nn.Linear(2, 1).to(torch.device("cpu")).weight \
        .device.type
    if not shendu.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            t.to(shendu.device("cuda"))


def test_accelerator_and_cuda_queries_agree_with_torch_on_this_machine():
    # torch here is a CPU build and shendu has no CuPy: both must say "no accelerator"
    assert shendu.accelerator.is_available() == torch.accelerator.is_available()
    assert shendu.accelerator.current_accelerator() == torch.accelerator.current_accelerator()
    assert shendu.cuda.is_available() == torch.cuda.is_available()
    assert shendu.cuda.device_count() == torch.cuda.device_count()
    assert shendu.accelerator.device_count() == torch.accelerator.device_count()
    assert shendu.backends.mps.is_available() == torch.backends.mps.is_available()
    shendu.backends.cudnn.benchmark = True  # scripts set these flags; they read back
    assert shendu.backends.cudnn.benchmark is True
    shendu.backends.cudnn.benchmark = False


def test_cuda_seeding_leaves_the_cpu_stream_alone():
    shendu.manual_seed(3)
    expected = shendu.randn(4).tolist()
    shendu.manual_seed(3)
    assert shendu.cuda.manual_seed(11) is None and shendu.cuda.manual_seed_all(12) is None
    assert shendu.randn(4).tolist() == expected  # torch: cuda seeds never touch the CPU
    with pytest.raises(TypeError, match="seed must be an int"):
        shendu.cuda.manual_seed_all("1")


def _blas_threads():
    from threadpoolctl import threadpool_info
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_set_num_threads_limits_blas_and_numba():
    import numba
    before = shendu.get_num_threads()
    assert before == torch.get_num_threads()  # both default to the cores here
    try:
        shendu.set_num_threads(1)
        assert shendu.get_num_threads() == 1
        assert _blas_threads() and set(_blas_threads()) == {1}
        assert numba.get_num_threads() == 1
        x = shendu.randn(64, 64)
        np.testing.assert_allclose((x @ x).numpy(), x.numpy() @ x.numpy(), rtol=1e-5)
    finally:
        shendu.set_num_threads(before)
    assert set(_blas_threads()) == {before} and shendu.get_num_threads() == before


@pytest.mark.parametrize("bad, match", [(0, "positive integer"), (-2, "positive integer"),
                                        (2.5, "expects an int"), ("a", "expects an int")])
def test_set_num_threads_rejects_what_torch_rejects(bad, match):
    with pytest.raises(RuntimeError, match=match):
        shendu.set_num_threads(bad)
    with pytest.raises(RuntimeError, match=match):
        torch.set_num_threads(bad)


@pytest.mark.parametrize("args", [
    ([1, 2],), ([[1.5, 2], [3, 4]],), (np.arange(3),), (np.ones((2, 2), dtype=np.float64),),
    ((2, 3),), (3,), (2, 3), ()])
def test_tensor_constructor_matches_torch(args):
    ours, theirs = shendu.Tensor(*args), torch.Tensor(*args)
    assert ours.dtype == shendu.float32 and theirs.dtype == torch.float32
    assert tuple(ours.shape) == tuple(theirs.shape)
    if args and not all(isinstance(a, int) for a in args):  # data, not uninitialised sizes
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_constructor_aliases_a_tensor_and_typed_ones_refuse_other_dtypes():
    base = shendu.zeros(3)
    alias = shendu.Tensor(base)
    alias.numpy()[0] = 5.0
    assert base[0].item() == 5.0  # shares memory, as torch.Tensor(t)
    wide = shendu.Tensor(shendu.zeros(2, dtype=shendu.float64))
    assert wide.dtype == shendu.float64  # torch.Tensor(t) aliases t whatever its dtype
    assert torch.Tensor(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(TypeError, match="int64"):
        shendu.LongTensor(shendu.zeros(2))
    with pytest.raises(TypeError):
        torch.LongTensor(torch.zeros(2))
    with pytest.raises(TypeError, match="int sizes"):
        shendu.Tensor(2, 3.0)
    assert not shendu.Tensor([1.0]).requires_grad


@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor",
                                  "BoolTensor", "ByteTensor", "HalfTensor"])
@pytest.mark.parametrize("args", [([0, 1.7, 2],), (4,), (2, 2)])
def test_typed_constructors_match_torch(name, args):
    ours, theirs = getattr(shendu, name)(*args), getattr(torch, name)(*args)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    assert tuple(ours.shape) == tuple(theirs.shape)
    if isinstance(args[0], list):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert isinstance(ours, getattr(shendu, name)) and isinstance(ours, shendu.Tensor)
    others = [n for n in ("FloatTensor", "LongTensor", "BoolTensor") if n != name]
    for other in others:
        assert isinstance(ours, getattr(shendu, other)) == isinstance(theirs, getattr(torch, other))
