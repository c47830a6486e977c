"""Figures of an AWS search: the pair heatmap and the entropy curve."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from augssl.search.aws import NUM_PAIRS, OPERATION_NAMES, PairPolicy, operation_index
from augssl.search.aws.figures import (
    UNIFORM_ENTROPY,
    plot_entropy_curve,
    plot_policy_heatmap,
    save_entropy_curve,
    save_policy_heatmap,
)


def skewed_policy() -> PairPolicy:
    policy = PairPolicy()
    with torch.no_grad():
        policy.first_logits[operation_index("Rotate@6")] = 3.0
        policy.second_logits[operation_index("Rotate@6"), operation_index("Invert")] = 4.0
    return policy


def test_the_heatmap_shows_the_joint_with_op1_as_rows_and_every_operation_named():
    policy = skewed_policy()
    figure = plot_policy_heatmap(policy)
    try:
        axis = figure.axes[0]
        shown = np.asarray(axis.images[0].get_array())
        np.testing.assert_allclose(shown, policy.joint().detach().double().numpy(), rtol=1e-6)
        row, column = np.unravel_index(shown.argmax(), shown.shape)
        assert (OPERATION_NAMES[row], OPERATION_NAMES[column]) == ("Rotate@6", "Invert")
        assert [t.get_text() for t in axis.get_yticklabels()] == list(OPERATION_NAMES)
        assert [t.get_text() for t in axis.get_xticklabels()] == list(OPERATION_NAMES)
        assert "op1" in axis.get_ylabel() and "op2" in axis.get_xlabel()
    finally:
        plt.close(figure)


def test_saved_figures_are_pngs_large_enough_to_read_36_names(tmp_path):
    heatmap = save_policy_heatmap(skewed_policy(), tmp_path / "heatmap.png")
    curve = save_entropy_curve([UNIFORM_ENTROPY, 7.0, 6.5], tmp_path / "entropy.png")
    with Image.open(heatmap) as image:
        assert image.format == "PNG" and min(image.size) >= 900
    with Image.open(curve) as image:
        assert image.format == "PNG"
    assert plt.get_fignums() == []  # saving closes the figures: long searches do not leak them


def test_the_entropy_curve_starts_at_loop_0_and_marks_the_uniform_entropy():
    figure = plot_entropy_curve([UNIFORM_ENTROPY, 7.1, 6.9])
    try:
        policy_line, uniform_line = figure.axes[0].get_lines()
        assert list(policy_line.get_xdata()) == [0, 1, 2]
        assert list(policy_line.get_ydata()) == [UNIFORM_ENTROPY, 7.1, 6.9]
        assert set(uniform_line.get_ydata()) == {math.log(NUM_PAIRS)}
    finally:
        plt.close(figure)


@pytest.mark.parametrize("entropies", [[], [7.0, float("nan")]])
def test_an_empty_or_non_finite_entropy_curve_is_refused(entropies):
    with pytest.raises(ValueError, match="at least one finite entropy"):
        plot_entropy_curve(entropies)
