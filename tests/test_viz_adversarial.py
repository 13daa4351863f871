"""FGSM / PGD against torchattacks (when it imports) and a torch twin of its source, in
float64; adversarial training through the Trainer."""
import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu import viz
from viz_twins import images, small_cnn, torch_twin

try:  # installed --no-deps (its wheel pins torchvision), so it may be missing or broken
    import torchattacks
except Exception:  # noqa: BLE001 - any import failure means: compare with the twin only
    torchattacks = None

LABELS = [3, 0, 7, 1]


def torch_fgsm(model, images, labels, eps, targeted=False):
    """torchattacks.FGSM.forward, restated."""
    images = images.clone().detach().requires_grad_(True)
    cost = torch.nn.CrossEntropyLoss()(model(images), labels)
    cost = -cost if targeted else cost
    grad = torch.autograd.grad(cost, images)[0]
    return torch.clamp(images + eps * grad.sign(), min=0, max=1).detach()


def torch_pgd(model, images, labels, eps, alpha, steps, init=None, targeted=False):
    """torchattacks.PGD.forward, restated, with the uniform random start passed in."""
    loss = torch.nn.CrossEntropyLoss()
    adv = images.clone().detach()
    if init is not None:
        adv = torch.clamp(adv + init, min=0, max=1).detach()
    for _ in range(steps):
        adv.requires_grad = True
        cost = loss(model(adv), labels)
        cost = -cost if targeted else cost
        grad = torch.autograd.grad(cost, adv)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-eps, max=eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return adv


@pytest.fixture(scope="module")
def setup():
    model = small_cnn(seed=2)
    x, tx = images(n=4, seed=3)
    return model, torch_twin(model), x, tx


def labels(lib):
    return lib.tensor(LABELS)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_matches_torchattacks(setup, targeted):
    model, twin, x, tx = setup
    ours = viz.fgsm(model, x, labels(shendu), 0.1, targeted=targeted)
    assert_close(ours, torch_fgsm(twin, tx, labels(torch), 0.1, targeted), rtol=0, atol=1e-12,
                 what="FGSM vs twin")
    if torchattacks is not None:
        attack = torchattacks.FGSM(twin, eps=0.1)
        if targeted:
            attack.set_mode_targeted_by_label(quiet=True)
        assert_close(ours, attack(tx, labels(torch)), rtol=0, atol=1e-12, what="FGSM")


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_matches_torchattacks(setup, random_start, targeted):
    model, twin, x, tx = setup
    eps, alpha, steps = 0.2, 0.05, 6
    torch.manual_seed(11)
    init = torch.empty_like(tx).uniform_(-eps, eps) if random_start else None
    ours = viz.pgd(model, x, labels(shendu), eps, alpha, steps, random_start=random_start,
                   targeted=targeted,
                   init=None if init is None else shendu.tensor(init.numpy()))
    expected = torch_pgd(twin, tx, labels(torch), eps, alpha, steps, init, targeted)
    assert_close(ours, expected, rtol=0, atol=1e-12, what="PGD vs twin")
    if torchattacks is not None:
        attack = torchattacks.PGD(twin, eps=eps, alpha=alpha, steps=steps,
                                  random_start=random_start)
        if targeted:
            attack.set_mode_targeted_by_label(quiet=True)
        torch.manual_seed(11)  # the same uniform_ draw as ``init`` above
        assert_close(ours, attack(tx, labels(torch)), rtol=0, atol=1e-12, what="PGD")


def test_pgd_stays_in_the_budget_and_beats_fgsm(setup):
    model, _, x, _ = setup
    y = model(x).argmax(1).detach()
    adv = viz.pgd(model, x, y, 0.3, 0.05, 20, generator=shendu.Generator(seed=0))
    diff = (adv - x).abs().numpy()
    assert diff.max() <= 0.3 + 1e-12 and adv.numpy().min() >= 0 and adv.numpy().max() <= 1
    loss = shendu.nn.functional.cross_entropy
    with shendu.no_grad():
        assert loss(model(adv), y).item() >= loss(model(viz.fgsm(model, x, y, 0.3)), y).item()


def test_targeted_pgd_pulls_towards_its_target(setup):
    model, _, x, _ = setup
    target = shendu.tensor([5, 5, 5, 5])
    adv = viz.pgd(model, x, target, 0.3, 0.05, 20, targeted=True,
                  generator=shendu.Generator(seed=1))
    with shendu.no_grad():
        before, after = model(x).softmax(1)[:, 5], model(adv).softmax(1)[:, 5]
    assert (after > 1.15 * before).all().item()  # an untrained net: flat logits, small moves


def test_attacks_restore_mode_and_leave_no_gradients(setup):
    model, _, x, _ = setup
    model.train()
    viz.fgsm(model, x, labels(shendu), 0.1)
    viz.pgd(model, x, labels(shendu), 0.1, 0.02, 3)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    model.eval()


def test_attacks_name_bad_input(setup):
    model, _, x, _ = setup
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.fgsm(model, x * 3 - 1, labels(shendu), 0.1)
    with pytest.raises(ValueError, match="labels"):
        viz.pgd(model, x, shendu.tensor([1, 2]), 0.1, 0.01, 2)
    with pytest.raises(ValueError, match="init"):
        viz.pgd(model, x, labels(shendu), 0.1, 0.01, 2, init=shendu.zeros(1, 1, 12, 12))


def test_pgd_object_attacks_normalised_batches_in_pixel_space(setup):
    model, _, x, _ = setup
    mean, std = 0.3, 0.4
    attack = viz.PGD(eps=0.1, steps=3, normalization=(mean, std),
                     generator=shendu.Generator(seed=4))
    adv = attack(model, (x - mean) / std, labels(shendu))
    pixels = adv * std + mean
    assert np.abs((pixels - x).numpy()).max() <= 0.1 + 1e-9
    direct = viz.pgd(viz.Normalized(model, mean, std), x, labels(shendu), 0.1, attack.alpha, 3,
                     generator=shendu.Generator(seed=4))
    assert_close(pixels, direct.numpy(), rtol=0, atol=1e-12, what="normalised PGD")


def test_adversarial_training_runs_through_the_trainer():
    from shendu.data import DataLoader, TensorDataset
    from shendu.train import Trainer
    model = small_cnn(seed=5, dtype=shendu.float32)
    shendu.manual_seed(0)
    x, y = shendu.rand(32, 1, 12, 12), shendu.randint(0, 10, (32,))
    seen = []

    def attack(m, xb, yb):
        seen.append(xb.shape)
        return viz.PGD(eps=0.1, steps=2)(m, xb, yb)

    trainer = Trainer(model, shendu.optim.Adam(model.parameters()),
                      shendu.nn.CrossEntropyLoss(), adversarial=attack)
    trainer.fit(DataLoader(TensorDataset(x, y), batch_size=16), epochs=1)
    assert seen == [(16, 1, 12, 12)] * 2
    with pytest.raises(TypeError, match="adversarial"):
        Trainer(model, None, shendu.nn.CrossEntropyLoss(), adversarial=0.3)


def test_robust_accuracy_is_clean_accuracy_at_eps_zero(setup):
    model, _, x, _ = setup
    with shendu.no_grad():
        y = model(x).argmax(1)
    assert viz.robust_accuracy(model, x, y, 0.0) == 1.0
    assert viz.robust_accuracy(model, x, y, 0.5, steps=10) < 1.0
