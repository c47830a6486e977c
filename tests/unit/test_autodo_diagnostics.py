"""Reading AutoDO's learned tables: the weight AUC's sign, augmentation units and figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from augssl.search.autodo import (
    AffineAugment,
    augment_parameters,
    noisy_weight_auc,
    noisy_weight_auc_within_class,
)
from augssl.search.autodo.figures import plot_augment_parameters, plot_weight_histogram

IS_NOISY = np.array([True, False, False, True, False])


def test_auc_is_one_when_every_noisy_image_weighs_least():
    assert noisy_weight_auc(np.array([0.2, 1.5, 1.1, 0.3, 0.9]), IS_NOISY) == 1.0


def test_auc_is_zero_when_noisy_images_weigh_most_and_half_when_all_are_equal():
    assert noisy_weight_auc(np.array([2.0, 0.5, 0.4, 3.0, 0.1]), IS_NOISY) == 0.0
    assert noisy_weight_auc(np.ones(5), IS_NOISY) == 0.5


def test_auc_counts_ordered_pairs():
    # 2 noisy x 3 clean = 6 pairs; the noisy 1.0 is below 1.5 and 1.1 but above 0.9
    assert noisy_weight_auc(np.array([0.2, 1.5, 1.1, 1.0, 0.9]), IS_NOISY) == pytest.approx(5 / 6)


def test_auc_is_undefined_without_both_kinds():
    assert noisy_weight_auc(np.ones(3), np.zeros(3, dtype=bool)) is None
    assert noisy_weight_auc(np.ones(3), np.ones(3, dtype=bool)) is None
    with pytest.raises(ValueError, match="one weight per image"):
        noisy_weight_auc(np.ones(4), IS_NOISY)


def test_augment_parameters_start_at_the_paper_initialisation():
    probability, magnitude = augment_parameters(AffineAugment("SEP", num_images=3))
    assert probability.shape == magnitude.shape == (3, 7)
    np.testing.assert_allclose(probability, 0.2, rtol=1e-6)
    np.testing.assert_allclose(magnitude, 0.5)


def test_augment_parameters_follow_the_table():
    augment = AffineAugment("SHA")
    with torch.no_grad():
        augment.table[0, 2] = torch.tensor([10.0, -10.0])
    probability, magnitude = augment_parameters(augment)
    assert probability[0, 2] > 0.9999 and magnitude[0, 2] < 1e-4


@pytest.mark.parametrize("mode, rows", [("SHA", 1), ("SEP", 40)])
def test_figures_are_drawn(tmp_path, mode, rows):
    rng = np.random.default_rng(0)
    figures = {"augment.png": plot_augment_parameters(rng.random((rows, 7)), rng.random((rows, 7)),
                                                      mode),
               "weights.png": plot_weight_histogram(rng.random(40) + 0.5, rng.random(40) < 0.3,
                                                    auc=0.8),
               "flat.png": plot_weight_histogram(np.ones(40), rng.random(40) < 0.3)}
    for name, figure in figures.items():
        figure.savefig(tmp_path / name)
        plt.close(figure)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_within_class_auc_is_not_fooled_by_weights_that_rebalance_classes():
    # A rare class (label 1) holds most noisy labels; weights that lift the whole rare class
    # rank noisy images above clean ones overall, yet within each class the clean ones weigh more.
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    is_noisy = np.array([False, False, False, True, False, True, True, True])
    weights = np.array([1.0, 1.0, 1.0, 0.5, 3.0, 2.0, 2.0, 2.0])
    assert noisy_weight_auc(weights, is_noisy) < 0.5
    assert noisy_weight_auc_within_class(weights, is_noisy, labels) == 1.0


def test_within_class_auc_averages_the_classes_that_hold_both_kinds():
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    is_noisy = np.array([False, True, False, True, True, False, False])
    weights = np.array([2.0, 1.0, 1.0, 2.0, 0.5, 1.0, 1.0])  # class 0: 1.0, class 1: 0.5
    assert noisy_weight_auc_within_class(weights, is_noisy, labels) == pytest.approx(0.75)
    assert noisy_weight_auc_within_class(weights, np.zeros(7, dtype=bool), labels) is None
