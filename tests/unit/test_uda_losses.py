import math

import pytest
import torch
import torch.nn.functional as F

from augssl.semisup.consistency import consistency_loss, entropy
from augssl.semisup.tsa import annealed_cross_entropy, tsa_threshold

K = 10


@pytest.mark.parametrize("schedule, alpha", [
    ("linear", lambda r: r),
    ("log", lambda r: 1 - math.exp(-5 * r)),
    ("exp", lambda r: math.exp(5 * (r - 1))),
])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_tsa_threshold_follows_the_paper_formula(schedule, alpha, ratio):
    total = 1000
    expected = alpha(ratio) * (1 - 1 / K) + 1 / K
    assert tsa_threshold(int(ratio * total), total, schedule, 1 / K, 1.0) == pytest.approx(expected)


def test_tsa_schedules_differ_in_the_middle():
    middle = [tsa_threshold(500, 1000, s, 0.1, 1.0) for s in ("exp", "linear", "log")]
    assert middle == sorted(middle) and middle[0] < 0.2 < 0.9 < middle[2]


def test_tsa_drops_samples_whose_true_class_probability_is_above_the_threshold():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0], [-3.0, 0.0]])
    targets = torch.tensor([0, 0, 0])
    loss, kept = annealed_cross_entropy(logits, targets, threshold=0.6)
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    assert kept.item() == pytest.approx(2 / 3)
    assert loss.item() == pytest.approx(per_sample[1:].mean().item())


def test_a_step_where_tsa_keeps_nothing_has_loss_zero_not_nan():
    logits = torch.tensor([[9.0, 0.0], [0.0, 9.0]], requires_grad=True)
    loss, kept = annealed_cross_entropy(logits, torch.tensor([0, 1]), threshold=0.1)
    assert loss.item() == 0.0 and kept.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0


def test_kl_consistency_equals_torch_kl_div_batchmean():
    torch.manual_seed(0)
    clean, strong = torch.randn(8, K), torch.randn(8, K)
    loss, mask_rate = consistency_loss(clean, strong, "KL")
    expected = F.kl_div(F.log_softmax(strong, 1), F.softmax(clean, 1), reduction="batchmean")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert mask_rate.item() == 1.0


def test_no_gradient_reaches_the_clean_view():
    clean = torch.randn(4, K, requires_grad=True)
    strong = torch.randn(4, K, requires_grad=True)
    loss, _ = consistency_loss(clean, strong, "KL", temperature=0.4, confidence_threshold=0.1)
    loss.backward()
    assert clean.grad is None
    assert strong.grad.abs().sum() > 0


def test_temperature_sharpens_and_the_mask_drops_unconfident_samples():
    clean = torch.tensor([[3.0, 0.0], [0.1, 0.0]])
    strong = torch.zeros(2, 2)
    loss, mask_rate = consistency_loss(clean, strong, "KL", confidence_threshold=0.8)
    assert mask_rate.item() == 0.5
    target = F.softmax(clean[:1], 1)
    first = F.kl_div(F.log_softmax(strong[:1], 1), target, reduction="sum")
    assert loss.item() == pytest.approx(first.item() / 2, rel=1e-5)
    sharp, _ = consistency_loss(clean, strong, "KL", temperature=0.4)
    plain, _ = consistency_loss(clean, strong, "KL")
    assert sharp > plain


def test_mse_compares_probabilities():
    clean, strong = torch.randn(5, K), torch.randn(5, K)
    loss, _ = consistency_loss(clean, strong, "MSE")
    expected = F.mse_loss(F.softmax(strong, 1), F.softmax(clean, 1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="expected one of KL, MSE"):
        consistency_loss(clean, strong, "L1")


def test_entropy_of_uniform_and_certain_predictions():
    assert entropy(torch.zeros(3, K)).item() == pytest.approx(math.log(K))
    assert entropy(torch.tensor([[50.0] + [0.0] * (K - 1)])).item() == pytest.approx(0, abs=1e-6)


def test_the_confidence_mask_reads_the_unsharpened_clean_prediction():
    # as the official code: the mask compares softmax(clean logits) with the threshold, the
    # temperature only sharpens the target. Sample 0 is 0.73 confident before sharpening and
    # 0.92 after; sample 1 is 0.95 confident before.
    clean = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    strong = torch.zeros(2, 2)
    loss, mask_rate = consistency_loss(clean, strong, "KL", temperature=0.4,
                                       confidence_threshold=0.8)
    assert mask_rate.item() == 0.5
    sharpened = F.softmax(clean[1:] / 0.4, 1)
    kept = F.kl_div(F.log_softmax(strong[1:], 1), sharpened, reduction="sum")
    assert loss.item() == pytest.approx(kept.item() / 2, rel=1e-5)
