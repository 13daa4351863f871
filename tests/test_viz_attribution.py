"""shendu.viz attribution against Captum (float64 twins), IG completeness, hooks and grads."""
import numpy as np
import pytest
import torch
from captum.attr import (IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion,
                         Saliency)

import shendu
from oracle import assert_close
from shendu import viz
from viz_twins import images, small_cnn, torch_twin

TARGETS = [3, 0, 7]


@pytest.fixture(scope="module")
def twins():
    model = small_cnn()
    return model, torch_twin(model)


def no_param_grads(model):
    return all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("use_abs", [True, False])
def test_saliency_matches_captum(twins, use_abs):
    model, twin = twins
    x, tx = images()
    ours = viz.saliency(model, x, TARGETS, abs=use_abs)
    theirs = Saliency(twin).attribute(tx, target=TARGETS, abs=use_abs)
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12, what="saliency")
    assert no_param_grads(model)


def test_smoothgrad_matches_captum_noise_tunnel_with_the_same_noise(twins):
    model, twin = twins
    x, tx = images()
    samples, stdev = 4, 0.2
    torch.manual_seed(5)
    theirs = NoiseTunnel(Saliency(twin)).attribute(tx, nt_type="smoothgrad", nt_samples=samples,
                                                   stdevs=stdev, target=TARGETS)
    # Captum's noise: one float32 torch.normal draw of shape (N * samples, ...), the sample
    # index varying fastest
    torch.manual_seed(5)
    noise = torch.normal(0, torch.full((3 * samples, 1, 12, 12), stdev)).double()
    noise = noise.reshape(3, samples, 1, 12, 12).transpose(0, 1).numpy()
    ours = viz.smoothgrad(model, x, TARGETS, samples=samples, noise=shendu.tensor(noise))
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12, what="smoothgrad")


def test_smoothgrad_draws_reproducible_noise(twins):
    model, _ = twins
    x, _ = images()
    a = viz.smoothgrad(model, x, 1, samples=3, stdev=0.1, generator=shendu.Generator(seed=2))
    b = viz.smoothgrad(model, x, 1, samples=3, stdev=0.1, generator=shendu.Generator(seed=2))
    assert np.array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), viz.saliency(model, x, 1).numpy())


@pytest.mark.parametrize("method", viz.attribution.IG_METHODS)
def test_integrated_gradients_matches_captum(twins, method):
    model, twin = twins
    x, tx = images()
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 0.2, (3, 1, 12, 12))
    ours, delta = viz.integrated_gradients(model, x, TARGETS, baseline=shendu.tensor(base),
                                           steps=20, method=method,
                                           return_convergence_delta=True)
    theirs, their_delta = IntegratedGradients(twin).attribute(
        tx, baselines=torch.tensor(base), target=TARGETS, n_steps=20, method=method,
        return_convergence_delta=True)
    assert_close(ours, theirs, rtol=1e-9, atol=1e-12, what=f"IG {method}")
    assert_close(delta, their_delta, rtol=1e-6, atol=1e-10, what=f"IG delta {method}")
    assert no_param_grads(model)


def test_integrated_gradients_completeness():
    """sum(IG) = f(x) - f(baseline); the error shrinks with more steps (here ReLU kinks
    make the integrand piecewise smooth, so the trapezoid-like rule converges slowly)."""
    model = small_cnn(seed=4)
    x, _ = images(n=2, seed=7)
    with shendu.no_grad():
        gap = (model(x)[:, 2] - model(shendu.zeros_like(x))[:, 2]).numpy()
    errors = []
    for steps in (8, 64, 512):
        attr = viz.integrated_gradients(model, x, 2, steps=steps, method="riemann_middle")
        errors.append(np.abs(attr.numpy().reshape(2, -1).sum(1) - gap).max())
    assert errors[-1] < 1e-3 * np.abs(gap).max() + 1e-6
    assert errors[-1] < errors[0]
    # on a linear model every rule is exact up to its weights' float32 rounding (Captum's)
    linear = shendu.nn.Sequential(shendu.nn.Flatten(), shendu.nn.Linear(144, 4)).double()
    with shendu.no_grad():
        gap = np.abs((linear(x) - linear(shendu.zeros_like(x)))[:, 1].numpy()).max()
    for method in ("gausslegendre", "riemann_left"):
        attr, delta = viz.integrated_gradients(linear, x, 1, steps=3, method=method,
                                               return_convergence_delta=True)
        assert np.abs(delta.numpy()).max() < 1e-7 * gap


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("layer", [0, 3])
def test_grad_cam_matches_captum(twins, relu, layer):
    model, twin = twins
    x, tx = images()
    ours = viz.grad_cam(model, model[layer], x, TARGETS, relu=relu)
    theirs = LayerGradCam(twin, twin[layer]).attribute(tx, target=TARGETS,
                                                       relu_attributions=relu)
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12, what="Grad-CAM")
    assert not model[layer]._forward_hooks and no_param_grads(model)


@pytest.mark.parametrize("window,strides,baseline", [
    ((1, 3, 3), 1, 0.0), ((1, 4, 4), (1, 3, 3), 0.5), ((1, 5, 5), (1, 4, 4), 0.0)])
def test_occlusion_matches_captum(twins, window, strides, baseline):
    model, twin = twins
    x, tx = images()
    ours = viz.occlusion(model, x, TARGETS, window=window, strides=strides, baseline=baseline,
                         perturbations_per_eval=7)
    theirs = Occlusion(twin).attribute(tx, sliding_window_shapes=window, strides=strides,
                                       baselines=baseline, target=TARGETS)
    # Captum returns occlusion maps in float32 (``attrib.float() / weight``) even for a
    # float64 model; ours keep the input's dtype, so they agree to float32 rounding
    assert theirs.dtype == torch.float32 and ours.dtype == shendu.float64
    assert_close(ours, theirs.double(), rtol=1e-6, atol=1e-9, what="occlusion")


def test_occlusion_takes_a_spatial_window_over_all_channels():
    model = small_cnn(in_channels=3)
    x, tx = images(channels=3)
    ours = viz.occlusion(model, x, 1, window=(4, 4), strides=(2, 2))
    theirs = Occlusion(torch_twin(model)).attribute(tx, sliding_window_shapes=(3, 4, 4),
                                                    strides=(1, 2, 2), target=1)
    assert_close(ours, theirs.double(), rtol=1e-6, atol=1e-9, what="occlusion (C, 4, 4)")


def test_attributions_restore_the_model_mode_and_leave_no_gradients():
    model = small_cnn()
    model.train()
    model[1].eval()  # a mixed state must come back exactly
    x, _ = images()
    viz.saliency(model, x, 0)
    viz.integrated_gradients(model, x, 0, steps=4)
    viz.grad_cam(model, model[3], x, 0)
    viz.occlusion(model, x, 0, window=(6, 6), strides=(6, 6))
    assert [m.training for m in model] == [True, False] + [True] * 5
    assert no_param_grads(model)


def test_attributions_name_bad_input():
    model = small_cnn()
    x, _ = images()
    with pytest.raises(ValueError, match="target"):
        viz.saliency(model, x, [1, 2])
    with pytest.raises(ValueError, match="target classes"):
        viz.saliency(model, x, 10)
    with pytest.raises(ValueError, match="method"):
        viz.integrated_gradients(model, x, 0, method="simpson")
    with pytest.raises(ValueError, match="window"):
        viz.occlusion(model, x, 0, window=(20, 20))
    with pytest.raises(ValueError, match="baseline"):
        viz.integrated_gradients(model, x, 0, baseline=shendu.zeros(2, 1, 12, 12))
