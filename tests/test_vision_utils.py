"""shendu.vision.utils against torchvision's make_grid, re-stated in torch (torchvision's wheel
does not load beside this torch), and save_image read back through Pillow."""
import math

import numpy as np
import pytest
import torch

import shendu
from shendu.vision.utils import make_grid, save_image


def torchvision_make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None,
                          scale_each=False, pad_value=0.0):
    """torchvision.utils.make_grid's algorithm (its loop, its normalisation), in torch."""
    if isinstance(tensor, list):
        tensor = torch.stack(tensor, dim=0)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 3:
        if tensor.size(0) == 1:
            tensor = torch.cat((tensor, tensor, tensor), 0)
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 4 and tensor.size(1) == 1:
        tensor = torch.cat((tensor, tensor, tensor), 1)
    if normalize:
        tensor = tensor.clone()

        def norm_ip(img, low, high):
            img.clamp_(min=low, max=high)
            img.sub_(low).div_(max(high - low, 1e-5))

        def norm_range(t):
            if value_range is not None:
                norm_ip(t, value_range[0], value_range[1])
            else:
                norm_ip(t, float(t.min()), float(t.max()))

        if scale_each:
            for t in tensor:
                norm_range(t)
        else:
            norm_range(tensor)
    if tensor.size(0) == 1:
        return tensor.squeeze(0)
    nmaps = tensor.size(0)
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = int(tensor.size(2) + padding), int(tensor.size(3) + padding)
    grid = tensor.new_full((tensor.size(1), height * ymaps + padding, width * xmaps + padding),
                           pad_value)
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= nmaps:
                break
            grid.narrow(1, y * height + padding, height - padding).narrow(
                2, x * width + padding, width - padding).copy_(tensor[k])
            k += 1
    return grid


CASES = [
    dict(shape=(5, 3, 4, 6)),
    dict(shape=(7, 1, 5, 5), nrow=3, padding=1, pad_value=0.5),
    dict(shape=(16, 2, 3, 3), nrow=4, padding=0),
    dict(shape=(1, 3, 4, 4)),
    dict(shape=(3, 6), normalize=True),
    dict(shape=(1, 5, 5)),
    dict(shape=(9, 3, 4, 4), normalize=True, nrow=5),
    dict(shape=(6, 1, 4, 4), normalize=True, scale_each=True),
    dict(shape=(6, 3, 4, 4), normalize=True, value_range=(-0.5, 0.5), scale_each=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c))
def test_make_grid_matches_torchvision(case):
    case = dict(case)
    shape = case.pop("shape")
    x = np.random.default_rng(0).normal(size=shape)
    ours = make_grid(shendu.tensor(x), **case)
    theirs = torchvision_make_grid(torch.tensor(x), **case)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_make_grid_takes_a_list_of_images():
    rng = np.random.default_rng(1)
    images = [rng.random((1, 4, 4)) for _ in range(3)]
    ours = make_grid([shendu.tensor(a) for a in images], nrow=2)
    theirs = torchvision_make_grid([torch.tensor(a) for a in images], nrow=2)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("bad, message", [
    ([], "empty list"),
    ("image", "expected a Tensor"),
    (np.zeros((2, 2, 2, 2, 2)), "shape"),
])
def test_make_grid_names_bad_input(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make_grid(bad)


def test_make_grid_refuses_mixed_sizes_and_bad_options():
    with pytest.raises(ValueError, match="one shape"):
        make_grid([shendu.zeros(1, 2, 2), shendu.zeros(1, 3, 3)])
    with pytest.raises(ValueError, match="nrow"):
        make_grid(shendu.zeros(2, 1, 2, 2), nrow=0)
    with pytest.raises(ValueError, match="value_range"):
        make_grid(shendu.zeros(2, 1, 2, 2), normalize=True, value_range=3)


def test_save_image_writes_the_grid_as_torchvision_rounds_it(tmp_path):
    from PIL import Image
    x = np.random.default_rng(2).random((4, 3, 5, 5)).astype(np.float32)
    path = tmp_path / "grid.png"
    save_image(shendu.tensor(x), path, nrow=2)
    grid = torchvision_make_grid(torch.tensor(x), nrow=2)
    expected = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)
