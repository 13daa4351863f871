"""shendu.viz: looking inside a model, attributing its predictions to pixels, attacking it and
transferring style with its features. Concept: N6.2.

Attribution follows Captum's semantics and the attacks follow torchattacks', so results can
be checked against them (tests/test_viz_*.py do).
"""
from shendu.viz.adversarial import PGD, Normalized, fgsm, pgd, robust_accuracy
from shendu.viz.attribution import (grad_cam, integrated_gradients, occlusion, saliency,
                                    smoothgrad)
from shendu.viz.inside import (activation_maximization, activation_stats, capture_outputs,
                               feature_grid, feature_maps, kernel_grid, total_variation)
from shendu.viz.sanity import (randomized_copy, rank_correlation,
                               saliency_randomization_check)

__all__ = ["kernel_grid", "feature_maps", "feature_grid", "capture_outputs", "activation_stats",
           "activation_maximization", "total_variation", "saliency", "smoothgrad",
           "integrated_gradients", "grad_cam", "occlusion", "fgsm", "pgd", "PGD", "Normalized",
           "robust_accuracy", "randomized_copy", "rank_correlation",
           "saliency_randomization_check"]
