"""The same code on another array namespace: models train on a fake CuPy (tests/fake_cupy.py)
that refuses to mix host NumPy arrays with its own, and give the CPU's numbers.

This catches, on a machine without a GPU, code that reaches for NumPy where the tensor's own
namespace was meant; what only a real GPU shows (kernels, memory, speed) is for
SHENDU_TEST_DEVICE=cuda on a GPU machine.
"""
import numpy as np
import pytest

import shendu
from shendu import nn, optim
from shendu.models import get_model

import fake_cupy


@pytest.fixture
def fake_gpu(monkeypatch):
    fake_cupy.install(monkeypatch)
    assert shendu.cuda_available()


def _train(model, make_batch, device, optimizer_class, steps=2):
    model = model.to(device, dtype=shendu.float64)  # exact comparisons, whatever the kernel
    optimizer = optimizer_class(model.parameters(), lr=1e-2)
    losses = []
    for step in range(steps):
        x, y = make_batch(step)
        x = x.to(device, dtype=shendu.float64 if x.dtype == shendu.float32 else x.dtype)
        y = y.to(device)
        optimizer.zero_grad()
        out = model(x)
        loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.item()))
    return losses, {k: v.numpy() for k, v in model.state_dict().items()}


CASES = {
    "lenet5": (dict(in_channels=1, num_classes=10), (4, 1, 28, 28), 10, False),
    "resnet20": (dict(in_channels=1, num_classes=10), (2, 1, 8, 8), 10, False),
    "char_rnn": (dict(vocab_size=11, embed_dim=8, hidden_size=16), (3, 6), 11, True),
    "gpt": (dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1),
            (3, 8), 11, True),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("optimizer_class", [optim.SGD, optim.Adam])
def test_models_train_on_a_device_namespace_like_on_numpy(fake_gpu, name, optimizer_class):
    config, shape, classes, tokens = CASES[name]

    def make_batch(step):
        gen = shendu.Generator(seed=step)
        if tokens:
            x = shendu.randint(0, classes, shape, generator=gen)
            return x, shendu.randint(0, classes, shape, generator=gen)
        return (shendu.randn(*shape, generator=gen),
                shendu.randint(0, classes, (shape[0],), generator=gen))

    results = []
    for device in ("cpu", "cuda"):
        shendu.manual_seed(0)
        model = get_model(name, **config)
        if name == "gpt":
            model.eval()  # dropout draws from each device's own generator: compare without it
        results.append(_train(model, make_batch, device, optimizer_class))
    (cpu_losses, cpu_state), (dev_losses, dev_state) = results
    np.testing.assert_allclose(dev_losses, cpu_losses, rtol=1e-10)
    for key in cpu_state:
        np.testing.assert_allclose(dev_state[key], cpu_state[key], rtol=1e-8, atol=1e-10,
                                   err_msg=key)


def test_the_fake_refuses_host_arrays(fake_gpu):
    device = shendu.ones(3, device="cuda")
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        device._data + np.ones(3)


def test_a_cpu_generator_for_device_tensors_is_refused_by_name(fake_gpu):
    weight = shendu.empty(3, 4, device="cuda")
    cpu = shendu.Generator(device="cpu", seed=0)
    with pytest.raises(ValueError, match="nn.init: generator is on cpu but the tensor is on cuda"):
        nn.init.trunc_normal_(weight, generator=cpu)
    with pytest.raises(ValueError, match="dropout: generator is on cpu"):
        nn.functional.dropout(weight, 0.5, generator=cpu)
    with pytest.raises(ValueError, match="generator is on cpu"):
        shendu.randn(2, device="cuda", generator=cpu)
    nn.init.trunc_normal_(weight, generator=shendu.Generator(device="cuda", seed=0))
    assert weight.device == "cuda"


def test_cross_entropy_refuses_a_target_on_another_device(fake_gpu):
    logits = shendu.randn(4, 3, device="cuda")
    with pytest.raises(ValueError, match="target is on cpu but input is on cuda"):
        nn.functional.cross_entropy(logits, shendu.zeros(4, dtype=shendu.int64, device="cpu"))


def test_default_device_places_new_tensors_and_generators(fake_gpu):
    shendu.set_default_device("cuda")
    try:
        assert shendu.tensor([1.0]).device == "cuda" and shendu.zeros(2).device == "cuda"
        assert shendu.Generator(seed=0).device == "cuda"
        assert shendu.tensor([1.0], device="cpu").device == "cpu"
    finally:
        shendu.set_default_device("cpu")
    assert shendu.ones(1).device == "cpu"
