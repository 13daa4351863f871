"""Bad inputs to tensors, layers, optimizers and schedulers: each gets a clear error naming the
op and what was expected (issue 15), never a raw NumPy message or a silently wrong result."""
import warnings

import numpy as np
import pytest
import torch

import shendu
from shendu import nn, optim
from shendu.optim import lr_scheduler


def param(*shape):
    return shendu.zeros(*shape, requires_grad=True)


# --- p.grad setter ----------------------------------------------------------------------------

@pytest.mark.parametrize("grad, what", [
    (lambda: shendu.ones(3), "shape"),
    (lambda: shendu.ones(2, 3), "shape"),
    (lambda: shendu.ones(2, dtype=shendu.float64), "dtype"),
])
def test_grad_setter_refuses_another_shape_or_dtype(grad, what):
    p = param(2)
    with pytest.raises(RuntimeError, match=f"Tensor.grad: assigned grad has {what}"):
        p.grad = grad()
    assert p.grad is None


def test_grad_setter_refuses_a_non_tensor_and_accepts_a_fitting_one():
    p = param(2)
    with pytest.raises(TypeError, match="must be a Tensor or None"):
        p.grad = np.ones(2)
    p.grad = shendu.ones(2)
    optim.SGD([p], lr=1.0).step()
    assert p.tolist() == [-1.0, -1.0]
    p.grad = None


# --- optimizer state and hyper-parameters -----------------------------------------------------

def test_load_state_dict_of_another_optimizer_type_is_refused():
    p = param(2)
    p.grad = shendu.ones(2)
    adam = optim.Adam([p])
    adam.step()
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: the state dict is not from a "
                                         r"SGD .*'momentum'"):
        optim.SGD([param(2)], lr=0.1).load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="not from a Adam .*'betas'"):
        optim.Adam([param(2)]).load_state_dict(optim.SGD([param(2)], lr=0.1).state_dict())


def test_load_state_dict_with_other_shapes_is_refused():
    p = param(2)
    p.grad = shendu.ones(2)
    adam = optim.Adam([p])
    adam.step()
    other = optim.Adam([param(3)])
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 0 has shape \(2,\) but "
                                         r"the parameter has shape \(3,\)"):
        other.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        other.load_state_dict({"model": {}})


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.Adam(p, lr="abc"), r"Adam: Invalid learning rate: 'abc' \(expected"),
    (lambda p: optim.Adam(p, lr=float("nan")), "Adam: Invalid learning rate: nan"),
    (lambda p: optim.Adam(p, betas=0.9), "Adam: Invalid betas: 0.9"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "Adam: Invalid betas"),
    (lambda p: optim.AdamW(p, eps="x"), "AdamW: Invalid epsilon value: 'x'"),
    (lambda p: optim.SGD(p, lr=None), "SGD: Invalid learning rate: None"),
    (lambda p: optim.SGD(p, lr=0.1, momentum="0.9"), "SGD: Invalid momentum value: '0.9'"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, dampening=-1),
     "Invalid dampening value: -1"),
    (lambda p: optim.RMSprop(p, alpha=[0.9]), "RMSprop: Invalid alpha value"),
    (lambda p: optim.Newton(p, cg_iters=0), "Newton: Invalid cg_iters value: 0"),
    (lambda p: optim.SGD([{"params": p, "lr": -1}], lr=0.1), "SGD: Invalid learning rate: -1"),
    (lambda p: optim.Adam([{"params": p, "betas": (0.9, 1.5)}]),
     "Invalid beta parameter at index 1: 1.5"),
])
def test_optimizer_hyper_parameters_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make([param(2)])


@pytest.mark.parametrize("make, match", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), "StepLR: Invalid step_size: 0"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2.5), "StepLR: Invalid step_size: 2.5"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2, gamma="x"), "StepLR: Invalid gamma: 'x'"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=-0.5), "StepLR: Invalid gamma: -0.5"),
    (lambda o: lr_scheduler.MultiStepLR(o, [2, -1]), "MultiStepLR: Invalid milestones: -1"),
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=0), "ExponentialLR: Invalid gamma: 0"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), "CosineAnnealingLR: Invalid T_max"),
    (lambda o: lr_scheduler.LinearLR(o, total_iters=0), "LinearLR: Invalid total_iters: 0"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor="a"), "LinearLR: Invalid start_factor"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr="1", total_steps=10),
     "OneCycleLR: Invalid max_lr: '1'"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, div_factor=0),
     "OneCycleLR: Invalid div_factor: 0"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=-1),
     "ReduceLROnPlateau: Invalid patience: -1"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor="0.5"),
     "ReduceLROnPlateau: Invalid factor: '0.5'"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2, last_epoch=-5), "Invalid last_epoch: -5"),
])
def test_scheduler_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make(optim.SGD([param(2)], lr=0.1, momentum=0.9))


@pytest.mark.parametrize("call, match", [
    (lambda p: nn.utils.clip_grad_norm_(p, max_norm=-1), "clip_grad_norm_: Invalid max_norm: -1"),
    (lambda p: nn.utils.clip_grad_norm_(p, max_norm="1"), "Invalid max_norm: '1'"),
    (lambda p: nn.utils.clip_grad_norm_(p, 1.0, norm_type=0), "Invalid norm_type: 0"),
    (lambda p: nn.utils.clip_grad_value_(p, -0.5), "clip_grad_value_: Invalid clip_value: -0.5"),
])
def test_gradient_clipping_arguments_are_checked(call, match):
    p = param(2)
    p.grad = shendu.tensor([3.0, -4.0])
    with pytest.raises(ValueError, match=match):
        call([p])
    assert p.grad.tolist() == [3.0, -4.0]  # untouched: a negative max_norm used to flip signs


# --- one dtype rule for every layer -----------------------------------------------------------

LAYERS = [
    (lambda: nn.Linear(4, 3), (2, 4)),
    (lambda: nn.Conv2d(2, 3, 3), (1, 2, 5, 5)),
    (lambda: nn.ConvTranspose2d(2, 3, 3), (1, 2, 5, 5)),
    (lambda: nn.LSTM(4, 5), (3, 2, 4)),
    (lambda: nn.GRU(4, 5), (3, 2, 4)),
    (lambda: nn.LayerNorm(4), (2, 4)),
    (lambda: nn.BatchNorm1d(4), (2, 4)),
    (lambda: nn.BatchNorm2d(2), (2, 2, 3, 3)),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(8, 2)), (2, 2, 4)),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), (3, 2, 8)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
@pytest.mark.parametrize("dtype, hint", [(shendu.float64, r"model\.double\(\)"),
                                         (shendu.float16, r"model\.to\(shendu\.float16\)")])
def test_every_layer_refuses_an_input_of_another_dtype(make, shape, dtype, hint):
    layer = make()
    x = shendu.randn(*shape).to(dtype)
    with pytest.raises(TypeError, match=rf"input dtype {dtype} does not match the parameters' "
                                        rf"dtype float32; convert the input with input\.float\(\)"
                                        rf" or the model with {hint}"):
        layer(x)


@pytest.mark.parametrize("make, shape", LAYERS)
def test_every_layer_keeps_float16_in_float16(make, shape):
    layer = make().to(shendu.float16)
    out = layer(shendu.randn(*shape).half())
    out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == shendu.float16


def test_parameter_free_layers_and_integer_inputs_are_not_affected():
    assert nn.ReLU()(shendu.ones(2, dtype=shendu.float64)).dtype == shendu.float64
    assert nn.LayerNorm(4, elementwise_affine=False)(shendu.ones(2, 4).half()).dtype == \
        shendu.float16
    assert nn.Embedding(5, 3)(shendu.tensor([1, 2])).shape == (2, 3)


# --- NumPy messages replaced ------------------------------------------------------------------

@pytest.mark.parametrize("index", [[[4]], [[-1]]])
def test_gather_out_of_range_names_the_op_and_the_valid_range(index):
    x = shendu.zeros(3, 4)
    with pytest.raises(IndexError, match=r"gather: index -?\d is out of range for dim 1 of "
                                         r"size 4 \(input shape \(3, 4\)\); valid indices are "
                                         r"0\.\.3"):
        x.gather(1, shendu.tensor(index))


def test_setitem_out_of_range_or_misshaped_names_the_shapes():
    x = shendu.zeros(3, 4)
    with pytest.raises(IndexError, match=r"__setitem__: cannot assign a value of shape \(\) at "
                                         r"index 5 of a tensor of shape \(3, 4\)"):
        x[5] = 1.0
    with pytest.raises(ValueError, match=r"__setitem__: cannot assign a value of shape \(3,\) "
                                         r"at index 0 of a tensor of shape \(3, 4\)"):
        x[0] = shendu.ones(3)
    x[0] = shendu.ones(4)
    assert x.sum().item() == 4.0


@pytest.mark.parametrize("call", [lambda x: x.to("tpu"), lambda x: x.to(dtype="tpu"),
                                  lambda x: nn.Linear(2, 2).to("tpu")])
def test_to_an_unknown_device_lists_the_valid_ones(call):
    with pytest.raises(TypeError, match=r"'tpu' is neither a dtype .* nor a device "
                                        r"\('cpu' or 'cuda'\)"):
        call(shendu.ones(2))


# --- std and logsumexp at the edges -----------------------------------------------------------

@pytest.mark.parametrize("dim", [None, 1])
def test_std_of_a_constant_input_has_gradient_zero_like_torch(dim):
    data = np.full((2, 3), 1.5)
    data[1] = np.arange(3.0)  # one constant row, one varying: the varying row must match too
    x = shendu.tensor(data if dim is not None else np.full((2, 3), 1.5), requires_grad=True)
    t = torch.tensor(x.detach().numpy(), requires_grad=True)
    x.std(dim).sum().backward()
    t.std(dim).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), atol=1e-12)
    assert np.isfinite(x.grad.numpy()).all()


def test_logsumexp_of_all_minus_inf_is_minus_inf_without_warnings():
    data = np.array([[-np.inf, -np.inf, -np.inf], [1.0, 2.0, -np.inf]])
    x = shendu.tensor(data, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = x.logsumexp(1)
        out.sum().backward()
    expected = torch.logsumexp(torch.tensor(data), 1).numpy()
    np.testing.assert_allclose(out.detach().numpy(), expected)
    # the finite row's gradient is torch's softmax; the all -inf row has no contributor: 0
    np.testing.assert_allclose(x.grad.numpy()[1], torch.softmax(torch.tensor(data[1]), 0))
    assert (x.grad.numpy()[0] == 0).all()
