"""Row-wise RMSprop over AutoDO's tables, the epoch schedule, and checkpoint/resume."""

from __future__ import annotations

import io
import math

import pytest
import torch

from augssl.search.autodo import AffineAugment, HyperOptimizer, LossModel, hyper_passes_due


def _grads(slices, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s.values.shape, generator=g) for s in slices]


def test_shared_row_follows_torch_rmsprop_on_the_summed_gradient():
    augment = AffineAugment("SHA")
    reference = torch.nn.Parameter(augment.table.detach().clone())
    torch_rmsprop = torch.optim.RMSprop([reference], lr=0.05)
    hyper_opt = HyperOptimizer(augment.parameters(), lr=0.05)
    for step in range(3):
        slices = augment.take(torch.arange(8))
        grads = _grads(slices, step)
        hyper_opt.step(slices, grads)
        reference.grad = grads[0].sum(0, keepdim=True)
        torch_rmsprop.step()
    torch.testing.assert_close(augment.table.detach(), reference.detach())


def test_per_image_rows_update_lazily_and_repeated_rows_add_up():
    loss_model = LossModel("WGHT", torch.zeros(10, dtype=torch.long), 2)
    hyper_opt = HyperOptimizer(loss_model.parameters(), lr=0.05)
    first = loss_model.take(torch.tensor([1, 2]))
    hyper_opt.step(first, [torch.tensor([1.0, -2.0])])
    after_first = loss_model.weight_logits.detach().clone()
    # RMSprop's first step from a zero average moves by lr / sqrt(1 - alpha) against the sign.
    torch.testing.assert_close(after_first[[1, 2]], torch.tensor([-0.5, 0.5]))
    untouched = [0, *range(3, 10)]
    assert (after_first[untouched] == 0).all()

    repeated = loss_model.take(torch.tensor([5, 5, 1]))
    hyper_opt.step(repeated, [torch.tensor([0.5, 0.5, 1.0])])
    square_avg = hyper_opt.square_avg[0]
    # Row 5 saw one summed gradient of 1.0; row 1 its second gradient of 1.0; row 2 nothing,
    # so its average did not decay (dense RMSprop would have multiplied it by 0.99).
    torch.testing.assert_close(square_avg[[5, 1, 2]],
                               torch.tensor([0.01, 0.01 * 0.99 + 0.01, 0.04]))
    torch.testing.assert_close(loss_model.weight_logits.detach()[2], torch.tensor(0.5))


def test_float16_tables_are_updated_in_float32_and_stored_back():
    augment = AffineAugment("SEP", num_images=6, dtype=torch.float16)
    hyper_opt = HyperOptimizer(augment.parameters())
    slices = augment.take(torch.tensor([0, 3]))
    hyper_opt.step(slices, [torch.ones(2, 7, 2)])
    assert augment.table.dtype == torch.float16
    torch.testing.assert_close(augment.table.detach()[3, 0].float(),
                               torch.tensor([math.log(0.25) - 0.5, -0.5]), atol=1e-3, rtol=0)
    assert (augment.table.detach()[1].float()[:, 1] == 0).all()


def _build():
    augment = AffineAugment("SEP", num_images=12)
    loss_model = LossModel("BOTH", torch.arange(12) % 3, 3)
    hyper_opt = HyperOptimizer([*augment.parameters(), *loss_model.parameters()])
    return augment, loss_model, hyper_opt


def _train(augment, loss_model, hyper_opt, steps: range) -> None:
    for step in steps:
        index = torch.arange(step % 3, 12, 3)
        slices = augment.take(index) + loss_model.take(index)
        hyper_opt.step(slices, _grads(slices, step))


def test_resuming_from_a_checkpoint_continues_exactly():
    straight = _build()
    _train(*straight, range(6))

    first_half = _build()
    _train(*first_half, range(3))
    buffer = io.BytesIO()
    torch.save({"augment": first_half[0].state_dict(), "loss": first_half[1].state_dict(),
                "hyper_opt": first_half[2].state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = _build()
    resumed[0].load_state_dict(saved["augment"])
    resumed[1].load_state_dict(saved["loss"])
    resumed[2].load_state_dict(saved["hyper_opt"])
    _train(*resumed, range(3, 6))

    for a, b in zip([*straight[0].parameters(), *straight[1].parameters()],
                    [*resumed[0].parameters(), *resumed[1].parameters()]):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert resumed[2].steps == 6


def test_state_of_other_tables_is_refused():
    hyper_opt = HyperOptimizer(AffineAugment("SEP", num_images=5).parameters())
    with pytest.raises(ValueError, match="same augmentation and loss modes"):
        hyper_opt.load_state_dict(HyperOptimizer(AffineAugment("SHA").parameters()).state_dict())
    stranger = AffineAugment("SHA")
    with pytest.raises(ValueError, match="was not given"):
        hyper_opt.step(stranger.take(torch.arange(2)), [torch.zeros(2, 7, 2)])


def test_after_the_warm_phase_every_epoch_runs_one_hyper_pass_before_its_training_pass():
    # the original (implicit-augment.py): hyperHesTrain, then innerTrain, in every epoch after
    # hyperEpochStart; the network trains in every epoch
    assert [hyper_passes_due(e, 3) for e in range(1, 9)] == [0, 0, 0, 1, 2, 3, 4, 5]
    assert hyper_passes_due(1, 0) == 1 and hyper_passes_due(2, 0) == 2
    with pytest.raises(ValueError, match="1-based"):
        hyper_passes_due(0, 3)
