"""shendu.viz: kernels, feature maps (hooks removed), activation statistics and maximisation,
the saliency sanity check (Adebayo et al.), style-transfer pieces."""
import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu import nn, viz
from shendu.viz.style import RandomMultiScale, gram_matrix, style_transfer
from viz_twins import images, small_cnn, torch_twin


def hooks_left(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_feature_maps_match_torch_forward_hooks_and_remove_theirs():
    model = small_cnn()
    twin = torch_twin(model)
    x, tx = images()
    maps = viz.feature_maps(model, x, ["1", model[4]])
    seen = {}
    handles = [twin[i].register_forward_hook(lambda m, a, o, i=i: seen.setdefault(i, o))
               for i in (1, 4)]
    twin(tx)
    for h in handles:
        h.remove()
    assert list(maps) == ["1", "4"]
    assert_close(maps["1"], seen[1], rtol=1e-12, atol=1e-12, what="ReLU 1 output")
    assert_close(maps["4"], seen[4], rtol=1e-12, atol=1e-12, what="ReLU 4 output")
    assert hooks_left(model) == 0 and not maps["1"].requires_grad


def test_hooks_are_removed_when_the_forward_pass_fails():
    model = small_cnn()
    with pytest.raises(ValueError):
        viz.feature_maps(model, shendu.zeros(2, 3, 12, 12, dtype=shendu.float64), ["0", "3"])  # wrong channels
    assert hooks_left(model) == 0
    with pytest.raises(ValueError, match="no layer"):
        viz.feature_maps(model, shendu.zeros(2, 1, 12, 12), ["conv9"])
    assert hooks_left(model) == 0


def test_kernel_grid_tiles_first_and_deep_layers():
    model = small_cnn(in_channels=3)
    first = viz.kernel_grid(model[0])  # 4 colour filters in one row, padding 1
    assert first.shape == (3, 3 + 2, 4 * 4 + 1)
    deep = viz.kernel_grid(model[3])   # 6 x 4 (out, in) grey tiles, one row per filter
    assert deep.shape == (3, 6 * 4 + 1, 4 * 4 + 1)
    assert 0 <= float(deep.min().item()) and float(deep.max().item()) <= 1
    with pytest.raises(ValueError, match="Conv2d"):
        viz.kernel_grid(model[6])


def test_activation_stats_count_dead_units():
    model = small_cnn()
    x, _ = images()
    stats = viz.activation_stats(model, x, ["0", "1"])
    relu = viz.feature_maps(model, x, ["1"])["1"].numpy()
    assert stats["1"]["zero_fraction"] == pytest.approx((relu == 0).mean())
    assert stats["1"]["min"] == 0.0 and stats["0"]["min"] < 0
    assert stats["1"]["mean"] == pytest.approx(relu.mean())


def test_activation_maximization_excites_its_unit():
    model = small_cnn(dtype=shendu.float32)
    gen = shendu.Generator(seed=0)
    image = viz.activation_maximization(model, "3", 2, (1, 12, 12), steps=30, lr=0.1,
                                        generator=gen)
    assert image.shape == (1, 1, 12, 12) and 0 <= image.min().item() <= image.max().item() <= 1
    grey = shendu.full((1, 1, 12, 12), 0.5)
    act = viz.feature_maps(model, shendu.cat([image, grey]), ["3"])["3"][:, 2].mean((1, 2))
    assert act[0].item() > act[1].item() + 1e-3
    assert hooks_left(model) == 0 and all(p.grad is None for p in model.parameters())


def quadrant_task(n=256, seed=0):
    """12 x 12 noise images with a bright 3 x 3 patch in one of 4 quadrants = the label."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.3, (n, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 4, n)
    rows, cols = 1 + 6 * (y // 2) + rng.integers(0, 2, n), 1 + 6 * (y % 2) + rng.integers(0, 2, n)
    for dy in range(3):
        for dx in range(3):
            x[np.arange(n), 0, rows + dy, cols + dx] = 1.0
    return shendu.tensor(x), shendu.tensor(y)


def test_saliency_of_a_trained_model_differs_from_random_weights():
    """Adebayo et al. 2018: the maps must depend on the learnt weights."""
    model = small_cnn(seed=3, dtype=shendu.float32, classes=4)
    x, y = quadrant_task()
    opt = shendu.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad()
    with shendu.no_grad():
        assert (model(x).argmax(1) == y).float().mean().item() > 0.9
    gen = shendu.Generator(seed=1)
    same = viz.rank_correlation(viz.saliency(model, x[:16], y[:16]),
                                viz.saliency(model, x[:16], y[:16]))
    assert np.allclose(same.numpy(), 1.0)
    correlation = viz.saliency_randomization_check(model, x[:16], y[:16], generator=gen)
    assert correlation < 0.3


def test_rank_correlation_matches_a_direct_spearman():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 50)), rng.standard_normal((3, 50))
    b[0] = a[0] * 2 + 1  # monotone: correlation 1
    ours = viz.rank_correlation(shendu.tensor(a), shendu.tensor(b)).numpy()
    for i in range(3):
        ra, rb = a[i].argsort().argsort(), b[i].argsort().argsort()
        assert ours[i] == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert ours[0] == pytest.approx(1.0)


def test_gram_matrix_matches_torch():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 5, 4, 3))
    t = torch.tensor(f, requires_grad=True)
    flat = t.reshape(2, 5, 12)
    expected = flat @ flat.transpose(1, 2) / 60
    ours = shendu.tensor(f, requires_grad=True)
    g = gram_matrix(ours)
    assert_close(g, expected, rtol=1e-12, atol=1e-12, what="Gram")
    upstream = rng.standard_normal((2, 5, 5))
    g.backward(shendu.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    assert_close(ours.grad, t.grad, rtol=1e-12, atol=1e-12, what="Gram gradient")


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_style_transfer_lowers_the_style_loss(optimizer):
    rng = np.random.default_rng(0)
    content = shendu.tensor(rng.uniform(0, 1, (1, 3, 16, 16)).astype(np.float32))
    stripes = np.zeros((1, 3, 16, 16), np.float32)
    stripes[:, :, ::4] = 1.0
    net = RandomMultiScale(kernel_sizes=(3, 5), filters=8)
    image, losses = style_transfer(net, content, shendu.tensor(stripes), net.names, ["k3"],
                                   steps=20, optimizer=optimizer, lr=0.05)
    assert losses["before"]["content"] == 0.0
    assert losses["after"]["style"] < 0.5 * losses["before"]["style"]
    assert losses["after"]["total"] < losses["before"]["total"]
    assert image.shape == content.shape and hooks_left(net) == 0
    assert all(p.grad is None for p in net.parameters())


def test_vgg19_features_name_gatys_layers_and_load_torchvision_keys(tmp_path):
    from shendu.viz import style
    net = style.vgg19_features()
    layers = dict(net.named_modules())
    for name in style.VGG19_STYLE_LAYERS + style.VGG19_CONTENT_LAYERS:
        assert type(layers[name]).__name__ == "ReLU", name
    convs = [n for n, m in layers.items() if type(m).__name__ == "Conv2d"]
    assert len(convs) == 16  # VGG-19's sixteen 3x3 convolutions
    # a torchvision-layout file: features.N.* (plus classifier keys, which are ignored)
    state = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    state["classifier.0.bias"] = shendu.zeros(3)
    path = str(tmp_path / "vgg19.safetensors")
    shendu.save(state, path)
    loaded = style.vgg19_features(path)
    assert np.array_equal(loaded.features[0].weight.detach().numpy(),
                          net.features[0].weight.detach().numpy())
