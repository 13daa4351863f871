"""shendu.vision.ops against references written from torchvision's definitions (float64).

torchvision cannot be installed beside our torch, so the RoI references below are direct
loop transcriptions of its CPU kernels (roi_align_kernel.cpp, roi_pool_kernel.cpp) written
with torch ops, so torch autograd gives the reference gradients; the RoI ops are also
gradchecked by finite differences.
"""
import math

import numpy as np
import pytest
import torch

import shendu
from shendu.vision import ops

from oracle import assert_close


def _bilinear(feat, y, x):
    """torchvision's bilinear_interpolate on one (H, W) map (torch, differentiable)."""
    height, width = feat.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return feat.new_zeros(())
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feat[y_low, x_low] + hy * lx * feat[y_low, x_high]
            + ly * hx * feat[y_high, x_low] + ly * lx * feat[y_high, x_high])


def roi_align_reference(x, rois, out_h, out_w, scale, sampling_ratio, aligned):
    outs = []
    offset = 0.5 if aligned else 0.0
    for roi in rois.tolist():
        b = int(roi[0])
        x1, y1, x2, y2 = (v * scale - offset for v in roi[1:])
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        chans = []
        for c in range(x.shape[1]):
            cells = []
            for ph in range(out_h):
                for pw in range(out_w):
                    total = x.new_zeros(())
                    for iy in range(grid_h):
                        yy = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                            total = total + _bilinear(x[b, c], yy, xx)
                    cells.append(total / count)
            chans.append(torch.stack(cells).reshape(out_h, out_w))
        outs.append(torch.stack(chans))
    return torch.stack(outs)


def roi_pool_reference(x, rois, out_h, out_w, scale):
    outs = []
    height, width = x.shape[2:]
    for roi in rois.tolist():
        b = int(roi[0])
        # C's round(): halves away from zero (Python's round() rounds halves to even)
        x1, y1, x2, y2 = (int(math.copysign(math.floor(abs(v * scale) + 0.5), v))
                          for v in roi[1:])
        roi_h, roi_w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        chans = []
        for c in range(x.shape[1]):
            cells = []
            for ph in range(out_h):
                hs = min(max(math.floor(ph * bin_h) + y1, 0), height)
                he = min(max(math.ceil((ph + 1) * bin_h) + y1, 0), height)
                for pw in range(out_w):
                    ws = min(max(math.floor(pw * bin_w) + x1, 0), width)
                    we = min(max(math.ceil((pw + 1) * bin_w) + x1, 0), width)
                    if he <= hs or we <= ws:
                        cells.append(x.new_zeros(()))
                        continue
                    best, where = None, None
                    for h in range(hs, he):
                        for w in range(ws, we):
                            v = x[b, c, h, w].item()
                            if best is None or v > best:
                                best, where = v, (h, w)
                    cells.append(x[b, c, where[0], where[1]])
            chans.append(torch.stack(cells).reshape(out_h, out_w))
        outs.append(torch.stack(chans))
    return torch.stack(outs)


def _random_rois(rng, n_images, count, size, scale_up=1.0):
    """Boxes in image coordinates, including tiny, out-of-map and inverted-width ones."""
    corners = rng.uniform(-2, size * scale_up + 2, size=(count, 2, 2))
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    rois = np.concatenate([rng.integers(0, n_images, size=(count, 1)), lo, hi], axis=1)
    rois[0, 1:] = [1.0, 1.0, 1.2, 1.1]  # smaller than one cell
    rois[1, 1:] = [size * scale_up - 1, 0.5, size * scale_up + 3, 2.0]  # over the right edge
    return rois


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio,scale,out", [(-1, 1.0, (3, 3)), (2, 0.5, (2, 3)),
                                                       (0, 0.25, (4, 2))])
def test_roi_align_matches_kernel_definition(aligned, sampling_ratio, scale, out):
    rng = np.random.default_rng(hash((aligned, sampling_ratio)) % 2**32)
    x = rng.normal(size=(2, 2, 7, 9))
    rois = _random_rois(rng, 2, 5, 8, 1 / scale)
    ours_x = shendu.tensor(x, requires_grad=True)
    ours = ops.roi_align(ours_x, shendu.tensor(rois), out, scale, sampling_ratio, aligned)
    ref_x = torch.tensor(x, requires_grad=True)
    ref = roi_align_reference(ref_x, torch.tensor(rois), *out, scale, sampling_ratio, aligned)
    assert_close(ours, ref, what="roi_align forward")
    upstream = rng.normal(size=ref.shape)
    ours.backward(shendu.tensor(upstream))
    ref.backward(torch.tensor(upstream))
    assert_close(ours_x.grad, ref_x.grad, what="roi_align grad")


@pytest.fixture(params=[False, True], ids=["numpy", "compiled"])
def compiled(request):
    """Run a test on the NumPy path and on the numba kernel (when numba is installed)."""
    from shendu import backend
    if request.param and not backend.compiled_kernels_available():
        pytest.skip("numba (the optional fast extra) is not installed; the NumPy path ran")
    backend.use_compiled_kernels(request.param)
    yield request.param
    backend.use_compiled_kernels(True)


@pytest.mark.parametrize("scale,out", [(1.0, (3, 3)), (0.5, (2, 4)), (0.25, (5, 2))])
def test_roi_pool_matches_kernel_definition(scale, out, compiled):
    rng = np.random.default_rng(int(scale * 100))
    x = rng.normal(size=(2, 3, 6, 8))
    rois = _random_rois(rng, 2, 6, 7, 1 / scale)
    rois[2, 1:] = [6.5 / scale, 2.5 / scale, 30 / scale, 30 / scale]  # starts on a half cell
    ours_x = shendu.tensor(x, requires_grad=True)
    ours = ops.roi_pool(ours_x, shendu.tensor(rois), out, scale)
    ref_x = torch.tensor(x, requires_grad=True)
    ref = roi_pool_reference(ref_x, torch.tensor(rois), *out, scale)
    assert_close(ours, ref, what="roi_pool forward")
    upstream = rng.normal(size=ref.shape)
    ours.backward(shendu.tensor(upstream))
    ref.backward(torch.tensor(upstream))
    assert_close(ours_x.grad, ref_x.grad, what="roi_pool grad")


def test_roi_pool_ties_send_the_gradient_to_the_first_cell(compiled):
    x = shendu.ones(1, 1, 4, 4, requires_grad=True)
    ops.roi_pool(x, [shendu.tensor([[0.0, 0.0, 3.0, 3.0]])], 1).sum().backward()
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 0, 0] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def _numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("op", ["align", "pool"])
def test_roi_ops_gradcheck(op):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 2, 5, 6))
    rois = shendu.tensor([[0, 0.3, 0.7, 4.2, 3.9], [1, 1.5, 0.2, 5.6, 4.4],
                          [1, -0.5, -0.5, 2.0, 6.0]])
    upstream = rng.normal(size=(3, 2, 2, 3))

    def run(arr, requires_grad=False):
        t = shendu.tensor(arr, requires_grad=requires_grad)
        y = (ops.roi_align(t, rois, (2, 3), 1.0, 2, True) if op == "align"
             else ops.roi_pool(t, rois, (2, 3), 1.0))
        return t, (y * shendu.tensor(upstream)).sum()

    t, loss = run(x, True)
    loss.backward()
    numeric = _numeric_grad(lambda a: run(a)[1].item(), x)
    np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-6, atol=1e-8)


def test_roi_align_list_boxes_equal_batch_index_form_and_keep_float32():
    x = shendu.randn(2, 3, 8, 8)
    a = shendu.tensor([[1.0, 1.0, 6.0, 5.0]])
    b = shendu.tensor([[0.0, 2.0, 4.0, 7.0], [2.0, 2.0, 3.0, 3.0]])
    listed = ops.roi_align(x, [a, b], 2, 1.0, 2)
    indexed = ops.roi_align(x, shendu.tensor([[0, 1.0, 1, 6, 5], [1, 0, 2, 4, 7],
                                              [1, 2, 2, 3, 3]]), 2, 1.0, 2)
    assert listed.dtype == shendu.float32 and listed.shape == (3, 3, 2, 2)
    np.testing.assert_allclose(listed.numpy(), indexed.numpy())
    assert ops.RoIAlign(2, 1.0, 2)(x, [a, b]).shape == (3, 3, 2, 2)
    assert ops.RoIPool((2, 1), 1.0)(x, [a, b]).shape == (3, 3, 2, 1)


def test_roi_ops_reject_bad_input():
    x = shendu.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"roi_align: boxes must be a Tensor of shape \(K, 5\)"):
        ops.roi_align(x, shendu.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=r"roi_pool: box batch indices"):
        ops.roi_pool(x, shendu.tensor([[1.0, 0, 0, 2, 2]]), 2)
    with pytest.raises(ValueError, match="roi_align: expected a float input"):
        ops.roi_align(shendu.randn(2, 4, 4), [shendu.zeros(1, 4)], 2)
    with pytest.raises(ValueError, match="output_size"):
        ops.roi_pool(x, [shendu.zeros(1, 4)], 0)


# --- boxes ----------------------------------------------------------------------------------

def _boxes(rng, n):
    xy = rng.uniform(0, 20, size=(n, 2))
    return np.concatenate([xy, xy + rng.uniform(0.5, 10, size=(n, 2))], axis=1)


def test_box_iou_area_match_definition_with_gradients():
    rng = np.random.default_rng(0)
    a, b = _boxes(rng, 5), _boxes(rng, 4)
    sa, sb = shendu.tensor(a, requires_grad=True), shendu.tensor(b, requires_grad=True)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)

    def torch_iou(p, q):
        area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
        area_q = (q[:, 2] - q[:, 0]) * (q[:, 3] - q[:, 1])
        lt = torch.max(p[:, None, :2], q[None, :, :2])
        rb = torch.min(p[:, None, 2:], q[None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        return inter / (area_p[:, None] + area_q[None] - inter)

    ours, ref = ops.box_iou(sa, sb), torch_iou(ta, tb)
    assert_close(ours, ref)
    up = rng.normal(size=(5, 4))
    ours.backward(shendu.tensor(up))
    ref.backward(torch.tensor(up))
    assert_close(sa.grad, ta.grad)
    assert_close(sb.grad, tb.grad)
    assert_close(ops.box_area(shendu.tensor(a)), (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_round_trips(fmt):
    a = _boxes(np.random.default_rng(1), 6)
    there = ops.box_convert(shendu.tensor(a), "xyxy", fmt).numpy()
    if fmt == "xywh":
        np.testing.assert_allclose(there, np.c_[a[:, :2], a[:, 2:] - a[:, :2]])
    else:
        np.testing.assert_allclose(there, np.c_[(a[:, :2] + a[:, 2:]) / 2, a[:, 2:] - a[:, :2]])
    back = ops.box_convert(shendu.tensor(there), fmt, "xyxy").numpy()
    np.testing.assert_allclose(back, a, rtol=1e-12)
    with pytest.raises(ValueError, match="box_convert: in_fmt"):
        ops.box_convert(shendu.tensor(a), "xy", "xyxy")


def nms_reference(boxes, scores, threshold):
    """torchvision's nms_kernel.cpp: visit by decreasing score, suppress IoU > threshold."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed, keep = np.zeros(len(boxes), bool), []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order:
            if suppressed[j] or j == i:
                continue
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = w * h
            if inter / (area[i] + area[j] - inter) > threshold:
                suppressed[j] = True
    return np.array(keep, dtype=np.int64)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9])
def test_nms_matches_greedy_definition(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    boxes, scores = _boxes(rng, 60), rng.uniform(size=60)
    kept = ops.nms(shendu.tensor(boxes), shendu.tensor(scores), threshold)
    assert kept.dtype == shendu.int64
    np.testing.assert_array_equal(kept.numpy(), nms_reference(boxes, scores, threshold))


def test_batched_nms_keeps_categories_apart():
    rng = np.random.default_rng(5)
    boxes, scores = _boxes(rng, 40), rng.uniform(size=40)
    idxs = rng.integers(0, 3, size=40)
    kept = ops.batched_nms(shendu.tensor(boxes), shendu.tensor(scores), shendu.tensor(idxs), 0.4)
    expected = np.concatenate([np.flatnonzero(idxs == c)[nms_reference(boxes[idxs == c],
                                                                       scores[idxs == c], 0.4)]
                               for c in range(3)])
    expected = expected[np.argsort(-scores[expected], kind="stable")]
    np.testing.assert_array_equal(kept.numpy(), expected)
    assert ops.nms(shendu.zeros(0, 4), shendu.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match=r"nms: expected scores of shape \(3,\)"):
        ops.nms(shendu.zeros(3, 4), shendu.zeros(2), 0.5)


def test_box_coder_matches_rcnn_parameterisation_and_round_trips():
    rng = np.random.default_rng(2)
    proposals, gt = _boxes(rng, 8), _boxes(rng, 8)
    coder = ops.BoxCoder((10.0, 10.0, 5.0, 5.0))
    deltas = coder.encode_single(shendu.tensor(gt), shendu.tensor(proposals)).numpy()
    pw, ph = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    expected = np.stack([10 * ((gt[:, 0] + gw / 2) - (proposals[:, 0] + pw / 2)) / pw,
                         10 * ((gt[:, 1] + gh / 2) - (proposals[:, 1] + ph / 2)) / ph,
                         5 * np.log(gw / pw), 5 * np.log(gh / ph)], axis=1)
    np.testing.assert_allclose(deltas, expected, rtol=1e-12)
    decoded = coder.decode(shendu.tensor(deltas), [shendu.tensor(proposals)])
    assert decoded.shape == (8, 1, 4)
    np.testing.assert_allclose(decoded.numpy()[:, 0], gt, rtol=1e-10, atol=1e-10)
    # decode is differentiable (the RPN/heads are trained through it in some losses)
    codes = shendu.tensor(deltas, requires_grad=True)
    coder.decode_single(codes, shendu.tensor(proposals)).sum().backward()
    assert codes.grad.shape == (8, 4)
    clipped = coder.decode_single(shendu.tensor([[0.0, 0, 1e3, 1e3]]),
                                  shendu.tensor([[0.0, 0, 1, 1]])).numpy()
    np.testing.assert_allclose(clipped[0, 2] - clipped[0, 0], 1000 / 16, rtol=1e-6)
