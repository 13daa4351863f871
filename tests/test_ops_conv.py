"""conv2d, conv_transpose2d and the 2-D pools against torch.nn.functional (float64, random
upstream gradients, Hessian-vector products through double backward)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from oracle import assert_close, check_op, to_torch

import shendu
from shendu.ops import conv as C


def _both(ours, theirs, **kwargs):
    """(shendu fn, torch fn) applying the two twins with the same keyword arguments."""
    return (lambda *t: ours(*t, **kwargs)), (lambda *t: theirs(*t, **kwargs))


def _conv_configs(count, seed):
    """Random conv geometries torch accepts: (shapes of x, w, b, kwargs)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, og = (int(v) for v in rng.integers(1, 4, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        stride = tuple(int(v) for v in rng.integers(1, 3, 2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        padding = tuple(int(v) for v in rng.integers(0, 3, 2))
        h, w = (int(v) for v in rng.integers(3, 9, 2))
        if (h + 2 * padding[0] < dilation[0] * (kh - 1) + 1
                or w + 2 * padding[1] < dilation[1] * (kw - 1) + 1):
            continue
        n = int(rng.integers(1, 3))
        out.append(((n, groups * cg, h, w), (groups * og, cg, kh, kw), (groups * og,),
                    {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}))
    return out


@pytest.mark.parametrize("shapes", _conv_configs(24, seed=1))
def test_conv2d_matches_torch(shapes):
    *inputs, kwargs = shapes
    ours, theirs = _both(C.conv2d, TF.conv2d, **kwargs)
    check_op(ours, inputs, theirs, second_order=True)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
# many channels with stride 1 take the "rows" layout, few channels the "full" im2col one
@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 16, 6, 7), (12, 16, 3, 3), {"padding": 1}),
    ((2, 16, 6, 7), (12, 8, 3, 2), {"padding": (2, 1), "dilation": (2, 1), "groups": 2}),
    ((2, 12, 5, 6), (6, 12, 3, 3), {"padding": "same"}),
    ((1, 12, 7, 6), (6, 12, 2, 4), {"padding": "same", "dilation": (1, 2)}),
    ((2, 12, 5, 6), (6, 12, 3, 3), {"padding": "valid", "stride": (1, 2)}),
    ((2, 3, 6, 6), (4, 3, 3, 3), {"padding": 1}),
    ((2, 4, 5, 5), (4, 1, 3, 3), {"padding": 1, "groups": 4}),
    # more output channels per group than output pixels: the batched weight-gradient GEMM
    ((3, 6, 4, 4), (16, 3, 3, 3), {"stride": 2, "padding": 1, "groups": 2}),
    ((4, 5, 2, 2), (9, 5, 2, 2), {}),
])
def test_conv2d_layouts_match_torch(x_shape, w_shape, kwargs):
    ours, theirs = _both(C.conv2d, TF.conv2d, **kwargs)
    check_op(ours, [x_shape, w_shape], theirs, second_order=True)


def test_both_patch_layouts_are_exercised():
    geom = C.Geom((1, 1), (1, 1), (1, 1), 1)
    assert C._use_rows(16, 12, 3, 3, geom, (6, 7))
    assert not C._use_rows(3, 4, 3, 3, geom, (6, 6))
    assert not C._use_rows(16, 12, 3, 3, C.Geom((2, 1), (1, 1), (1, 1), 1), (3, 7))


def _transpose_configs(count, seed):
    """Transposed-conv geometries (with output_padding) that torch accepts."""
    out = []
    for (n, c, h, w), (o, cg, kh, kw), _, kwargs in _conv_configs(count, seed):
        kwargs = dict(kwargs, output_padding=tuple(
            min(1, max(s, d) - 1) for s, d in zip(kwargs["stride"], kwargs["dilation"])))
        inputs = [(n, o, h, w), (o, cg, kh, kw), (cg * kwargs["groups"],)]
        try:
            TF.conv_transpose2d(*[torch.zeros(s, dtype=torch.float64) for s in inputs],
                                **kwargs)
        except RuntimeError:
            continue
        out.append((inputs, kwargs))
    return out


@pytest.mark.parametrize("inputs, kwargs", _transpose_configs(18, seed=2))
def test_conv_transpose2d_matches_torch(inputs, kwargs):
    ours, theirs = _both(C.conv_transpose2d, TF.conv_transpose2d, **kwargs)
    check_op(ours, inputs, theirs, second_order=True)


def test_conv_transpose2d_large_padding_and_channels():
    ours, theirs = _both(C.conv_transpose2d, TF.conv_transpose2d, padding=2)
    check_op(ours, [(2, 12, 6, 5), (12, 10, 3, 3), (10,)], theirs, second_order=True)


def test_conv_chain_reads_strided_outputs():
    """A conv output laid out channel-major feeds another conv, a pool and a reshape."""
    def net(fn_conv, fn_pool):
        def run(x, w1, w2):
            y = fn_conv(x, w1, padding=1).relu()
            return fn_pool(fn_conv(y, w2, padding=1), 2).reshape(x.shape[0], -1)
        return run
    check_op(net(C.conv2d, C.max_pool2d), [(2, 8, 6, 6), (10, 8, 3, 3), (9, 10, 3, 3)],
             net(TF.conv2d, TF.max_pool2d))


def test_unbatched_inputs():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    cases = [
        (C.conv2d, TF.conv2d, (x, w), {"padding": 1}),
        (C.conv_transpose2d, TF.conv_transpose2d, (rng.standard_normal((4, 5, 5)), w),
         {"stride": 2}),
        (C.max_pool2d, TF.max_pool2d, (x,), {"kernel_size": 2}),
        (C.avg_pool2d, TF.avg_pool2d, (x,), {"kernel_size": 3, "stride": 2, "padding": 1}),
        (C.adaptive_avg_pool2d, TF.adaptive_avg_pool2d, (x,), {"output_size": (3, 4)}),
    ]
    for ours, theirs, arrays, kwargs in cases:
        got = ours(*[shendu.tensor(a) for a in arrays], **kwargs)
        assert got.ndim == 3
        assert_close(got, theirs(*[to_torch(a) for a in arrays], **kwargs))
    values, indices = C.max_pool2d(shendu.tensor(x), 2, return_indices=True)
    assert values.shape == indices.shape == (3, 3, 3)


def _pool_configs(count, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        out.append({"kernel_size": k, "stride": tuple(int(v) for v in rng.integers(1, 4, 2)),
                        "padding": tuple(int(rng.integers(0, v // 2 + 1)) for v in k),
                        "ceil_mode": bool(rng.integers(0, 2))})
    return out


def _tied(shape, seed):
    """Values on a coarse grid, so windows hold equal maxima (as after a ReLU)."""
    return np.maximum(np.random.default_rng(seed).integers(-2, 3, shape), 0).astype(np.float64)


@pytest.mark.parametrize("kwargs", _pool_configs(14, seed=4))
@pytest.mark.parametrize("dilation", [1, (2, 1)])
def test_max_pool2d_matches_torch(kwargs, dilation):
    ours, theirs = _both(C.max_pool2d, TF.max_pool2d, dilation=dilation, **kwargs)
    check_op(ours, [(2, 3, 7, 8)], theirs, second_order=True)
    check_op(ours, [_tied((2, 3, 7, 8), seed=5)], theirs)  # first maximum takes the grad
    x = _tied((2, 3, 7, 8), seed=6)
    values, indices = C.max_pool2d(shendu.tensor(x), return_indices=True, dilation=dilation,
                                   **kwargs)
    t_values, t_indices = TF.max_pool2d(to_torch(x), return_indices=True, dilation=dilation,
                                        **kwargs)
    assert_close(values, t_values)
    np.testing.assert_array_equal(indices.numpy(), t_indices.numpy())


def test_max_pool2d_tiled_windows_and_nan():
    check_op(lambda x: C.max_pool2d(x, 2), [(2, 3, 8, 6)], lambda x: TF.max_pool2d(x, 2),
             second_order=True)
    x = np.random.default_rng(7).standard_normal((1, 2, 4, 4))
    x[0, 0, 0, 1] = x[0, 1, 3, 2] = x[0, 1, 2, 3] = np.nan
    ours = C.max_pool2d(shendu.tensor(x), 2, return_indices=True)
    theirs = TF.max_pool2d(to_torch(x), 2, return_indices=True)
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())


def test_max_pool2d_backward_with_inf_gradient():
    x = np.random.default_rng(8).standard_normal((1, 1, 4, 4))
    g = np.ones((1, 1, 2, 2))
    g[0, 0, 0, 0] = np.inf
    ours = shendu.tensor(x, requires_grad=True)
    C.max_pool2d(ours, 2).backward(shendu.tensor(g))
    theirs = to_torch(x, requires_grad=True)
    TF.max_pool2d(theirs, 2).backward(to_torch(g))
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize("kwargs", _pool_configs(12, seed=9))
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(kwargs, count_include_pad):
    ours, theirs = _both(C.avg_pool2d, TF.avg_pool2d, count_include_pad=count_include_pad,
                         **kwargs)
    check_op(ours, [(2, 3, 7, 8)], theirs, second_order=True)


def test_avg_pool2d_tiles_and_divisor_override():
    for kwargs in ({"kernel_size": 2}, {"kernel_size": (2, 3), "divisor_override": 5}):
        ours, theirs = _both(C.avg_pool2d, TF.avg_pool2d, **kwargs)
        check_op(ours, [(2, 3, 7, 9)], theirs, second_order=True)


@pytest.mark.parametrize("output_size", [1, (1, 1), (2, 3), (3, 5), (4, None), (7, 10), 5])
def test_adaptive_avg_pool2d_matches_torch(output_size):
    ours, theirs = _both(C.adaptive_avg_pool2d, TF.adaptive_avg_pool2d, output_size=output_size)
    check_op(ours, [(2, 3, 7, 10)], theirs, second_order=True)


def test_dtype_is_kept():
    x = shendu.randn(2, 3, 6, 6)
    w = shendu.randn(4, 3, 3, 3)
    outputs = [C.conv2d(x, w), C.conv_transpose2d(x, w.reshape(3, 4, 3, 3)),
               C.max_pool2d(x, 2), C.avg_pool2d(x, 2), C.adaptive_avg_pool2d(x, 4)]
    assert all(o.dtype == shendu.float32 for o in outputs)


def _raises(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_bad_inputs_raise_clear_errors():
    x = shendu.randn(32, 28, 28, 3)
    w = shendu.randn(16, 3, 3, 3)
    _raises(ValueError, r"conv2d: expected input \(N, 3, H, W\) with 3 channels to match "
            r"weight \(16, 3, 3, 3\), got \(32, 28, 28, 3\)", C.conv2d, x, w)
    img = shendu.randn(1, 3, 5, 5)
    _raises(RuntimeError, "conv2d: kernel of size 7 .* larger than the padded input",
            C.conv2d, img, shendu.randn(2, 3, 7, 7))
    _raises(ValueError, "conv2d: expected a 3-D .* got shape \\(3, 5\\)", C.conv2d,
            shendu.randn(3, 5), w)
    _raises(ValueError, "padding='same' needs stride 1", C.conv2d, img, w, stride=2,
            padding="same")
    _raises(ValueError, "padding must be an int, a pair", C.conv2d, img, w, padding="full")
    _raises(ValueError, "bias of shape \\(16,\\)", C.conv2d, img, w, shendu.randn(4))
    _raises(ValueError, "groups=2", C.conv2d, shendu.randn(1, 4, 5, 5),
            shendu.randn(3, 2, 3, 3), groups=2)
    _raises(TypeError, "dtype", C.conv2d, img.double(), w)
    _raises(ValueError, "stride must be >= 1", C.conv2d, img, w, stride=0)
    _raises(TypeError, "stride must be an int or a pair", C.conv2d, img, w, stride=(1, 2, 3))
    _raises(ValueError, "conv_transpose2d: output_padding", C.conv_transpose2d,
            shendu.randn(1, 16, 4, 4), w, stride=2, output_padding=2)
    _raises(ValueError, "conv_transpose2d: expected input \\(N, 16, H, W\\)",
            C.conv_transpose2d, img, w)
    _raises(ValueError, "max_pool2d: padding .* at most half", C.max_pool2d, img, 2, padding=2)
    _raises(RuntimeError, "avg_pool2d: input .* too small", C.avg_pool2d, img, 7)
    _raises(TypeError, "max_pool2d: expected a floating-point input", C.max_pool2d,
            shendu.tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2)
    _raises(ValueError, "adaptive_avg_pool2d: output_size must be >= 1",
            C.adaptive_avg_pool2d, img, 0)


def test_batched_weight_gradient_with_bias_matches_torch():
    """Few output pixels, many channels: dL/dw and dL/db come from one GEMM over the batch."""
    ours, theirs = _both(C.conv2d, TF.conv2d, stride=2)
    check_op(ours, [(5, 3, 3, 3), (7, 3, 2, 2), (7,)], theirs, second_order=True)
