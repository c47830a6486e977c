"""AutoDO's differentiable affine augmentation: gradients, geometry, randomness, memory."""

from __future__ import annotations

import math

import pytest
import torch

from augssl.search.autodo import AFFINE_OPS, OP_RANGES, AffineAugment, affine_warp, sep_memory_bytes
from augssl.search.autodo.augment_model import _sample_op_values, _sampling_matrices


def _images(batch: int = 16, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _gradients(augment: AffineAugment, images: torch.Tensor, index: torch.Tensor,
               seed: int = 1) -> torch.Tensor:
    (piece,) = augment.take(index)
    out = augment(images, index, torch.Generator().manual_seed(seed), slices=[piece])
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * weights).sum().backward()
    return piece.values.grad


def test_every_probability_and_magnitude_logit_of_a_shared_set_gets_a_gradient():
    augment = AffineAugment("SHA")
    grad = _gradients(augment, _images(), torch.arange(16)).sum(0)   # summed over the batch
    assert grad.shape == (len(AFFINE_OPS), 2)
    assert torch.isfinite(grad).all()
    assert (grad.abs() > 1e-6).all(), f"ops without gradient: {grad}"


def test_per_image_rows_get_gradients_for_every_probability_and_every_applied_magnitude():
    augment = AffineAugment("SEP", num_images=40)
    index = torch.tensor([3, 7, 11, 19, 23, 29, 31, 37])
    grad = _gradients(augment, _images(8), index, seed=4)
    assert grad.shape == (8, len(AFFINE_OPS), 2)
    assert (grad[..., 0] != 0).all()
    # The warp draws its bits first, so the same seed replays them.
    applied = _sample_op_values(augment.table.detach()[index], torch.Generator().manual_seed(4),
                                1.0) != 0
    assert 0 < applied.sum() < applied.numel()
    torch.testing.assert_close(grad[..., 1] != 0, applied)


def test_ops_left_out_give_back_the_image():
    augment = AffineAugment("SHA")
    with torch.no_grad():
        augment.table[..., 0] = -40.0                                # no op applied
    images = _images()
    out = augment(images, torch.arange(16), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def _warp_with_values(images: torch.Tensor, **values: float) -> torch.Tensor:
    row = torch.zeros(1, len(AFFINE_OPS))
    for name, value in values.items():
        row[0, AFFINE_OPS.index(name)] = value
    theta = _sampling_matrices(row.expand(len(images), -1), *images.shape[-2:])
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, align_corners=False)


def test_translation_moves_the_content_by_the_fraction_of_the_size():
    images = _images(2, size=8)
    moved = _warp_with_values(images, translate_x=0.25, translate_y=-0.125)   # +2 px, -1 px
    torch.testing.assert_close(moved[..., 0:7, 2:], images[..., 1:8, :6], atol=1e-5, rtol=0)
    assert moved[..., :, :2].abs().max() == 0                         # zeros padding


def test_positive_rotation_turns_the_content_clockwise_about_the_centre():
    images = _images(2, size=8)
    turned = _warp_with_values(images, rotate=math.pi / 2)
    torch.testing.assert_close(turned, torch.rot90(images, -1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_scale_stretches_the_content_about_the_centre_along_each_axis():
    centres = torch.arange(8.0) - 3.5                      # pixel centres, in px from the centre
    ramps = torch.stack([centres.expand(8, 8), centres[:, None].expand(8, 8)])[None]
    stretched = _warp_with_values(ramps, scale_x=0.5, scale_y=-0.5)   # x1.5 wide, x0.5 high
    # Bilinear sampling reproduces a linear ramp exactly where it samples inside the image;
    # the squashed content fills rows 2..5 and the rest is padding.
    torch.testing.assert_close(stretched[0, 0, 2:6], centres.expand(4, 8) / 1.5, atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(stretched[0, 1, 2:6], centres[2:6, None].expand(4, 8) / 0.5,
                               atol=1e-5, rtol=0)
    assert stretched[0, :, [0, 1, 6, 7]].abs().max() == 0


def test_shear_x_shifts_rows_in_proportion_to_their_distance_from_the_centre():
    images = _images(1, size=8)
    sheared = _warp_with_values(images, shear_x=2 / 3)
    # Row i's centre lies i - 3.5 px below the image centre: rows 5 and 2 move by +1 and -1 px.
    torch.testing.assert_close(sheared[..., 5, 1:], images[..., 5, :7], atol=1e-5, rtol=0)
    torch.testing.assert_close(sheared[..., 2, :7], images[..., 2, 1:], atol=1e-5, rtol=0)


def test_the_table_starts_at_the_originals_probability_and_magnitude():
    # the original (custom_models/automodels.py, AugmentModel): probability 1/(K-2) for K = 7
    table = AffineAugment("SEP", num_images=3).table.detach()
    torch.testing.assert_close(torch.sigmoid(table[..., 0]), torch.full((3, 7), 0.2))
    torch.testing.assert_close(table[..., 0], torch.full((3, 7), math.log(0.2 / 0.8)))
    assert (table[..., 1] == 0).all()


def test_an_applied_value_is_range_times_sigmoid_magnitude_times_unclipped_normal_noise():
    params = torch.zeros(5000, len(AFFINE_OPS), 2)
    params[..., 0] = 40.0                                   # every op applied
    params[..., 1] = torch.linspace(-2.0, 2.0, 5000)[:, None]
    values = _sample_op_values(params, torch.Generator().manual_seed(0), 1.0)
    # the bits come first from the generator, then the noise
    replay = torch.Generator().manual_seed(0)
    torch.rand(values.shape, generator=replay)
    noise = torch.randn(values.shape, generator=replay)
    expected = torch.tensor(OP_RANGES) * torch.sigmoid(params[..., 1]) * noise
    torch.testing.assert_close(values, expected)
    assert noise.abs().max() > 3                            # a draw beyond the old clip of 2


def test_sampled_values_follow_the_documented_distribution():
    params = torch.zeros(20000, len(AFFINE_OPS), 2)
    params[..., 0] = math.log(0.2 / 0.8)
    values = _sample_op_values(params, torch.Generator().manual_seed(0), 1.0)
    applied = values != 0
    assert abs(applied.float().mean().item() - 0.2) < 0.01
    ranges = torch.tensor(OP_RANGES)
    # At m = 0 the magnitude is sigmoid(0) * eps: half the range in std.
    spread = values.std(0) / applied.float().mean(0).sqrt() / ranges
    assert ((spread > 0.47) & (spread < 0.53)).all(), spread
    assert (values.mean(0).abs() / ranges < 0.02).all()


def test_pixels_from_outside_the_image_repeat_its_border():
    augment = AffineAugment("SHA")
    assert augment.padding_mode == "border"
    with torch.no_grad():
        augment.table[..., 0] = 40.0                        # every op applied, full magnitude
        augment.table[..., 1] = 40.0
    flat = torch.full((16, 3, 12, 12), 0.7)
    out = augment(flat, torch.arange(16), torch.Generator().manual_seed(0))
    # zeros padding would bring 0 in wherever the warp reads outside the image
    torch.testing.assert_close(out, flat, atol=1e-5, rtol=0)


def test_the_generator_alone_decides_the_draws():
    augment = AffineAugment("SHA")
    images = _images()
    index = torch.arange(16)
    first = augment(images, index, torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    again = augment(images, index, torch.Generator().manual_seed(5))
    other = augment(images, index, torch.Generator().manual_seed(6))
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.allclose(first, other)


def test_shared_mode_draws_per_image_but_sep_reads_each_images_own_row():
    augment = AffineAugment("SEP", num_images=4)
    with torch.no_grad():
        augment.table[0, :, 0] = -40.0          # image 0: never augmented
        augment.table[1, :, 0] = 40.0           # image 1: always
    images = _images(2)
    out = augment(images, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[0], images[0], atol=1e-5, rtol=0)
    assert not torch.allclose(out[1], images[1], atol=1e-3)
    with pytest.raises(IndexError, match="positions in the biased training set"):
        augment.take(torch.tensor([4]))


def test_float16_table_and_reflection_padding_work():
    augment = AffineAugment("SEP", num_images=16, dtype=torch.float16, padding_mode="reflection")
    grad = _gradients(augment, _images(), torch.arange(16))
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="one of"):
        AffineAugment("BOTH")
    with pytest.raises(ValueError, match="num_images"):
        AffineAugment("SEP")
    with pytest.raises(ValueError, match="normalised"):
        affine_warp(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 7, 2),
                    torch.Generator())
    with pytest.raises(ValueError, match=r"shape \(2, 7, 2\)"):
        affine_warp(torch.zeros(2, 3, 8, 8), torch.zeros(7, 2), torch.Generator())


def test_sep_memory_for_imagenet():
    imagenet_images = 1_281_167
    table_only = sep_memory_bytes(imagenet_images, with_optimizer_state=False)
    total = sep_memory_bytes(imagenet_images)
    print(f"SEP augmentation for ImageNet: table {table_only / 1e6:.1f} MB, "
          f"with RMSprop state {total / 1e6:.1f} MB")
    assert table_only == imagenet_images * 7 * 2 * 4 == 71_745_352
    assert total == 143_490_704
    assert sep_memory_bytes(imagenet_images, torch.float16) == 107_618_028
    table = AffineAugment("SEP", num_images=1000).table
    assert sep_memory_bytes(1000, with_optimizer_state=False) == \
        table.numel() * table.element_size()
