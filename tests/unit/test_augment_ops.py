"""Batched uint8 operations against the PIL reference, op by op, filling what geometric ops
uncover with a data set's mean colour (one value per channel).

Tolerances (per op group, applied to every magnitude, sign and image set below):

* geometric (ShearX/Y, TranslateX/Y, Rotate) and point ops (AutoContrast, Equalize, Invert,
  Solarize, Posterize): exact.  The batch code evaluates PIL's own arithmetic: 16.16 fixed-point
  sampling positions (floor division for pure translations), PIL's integer equalize tables and
  its float64 autocontrast tables, so there is no rounding freedom left.  Any difference is a
  real disagreement (a shifted sampling boundary would move whole rows).
* blends (Brightness, Contrast, Color, Sharpness): at most 1 grey level, on at most 0.5% of the
  pixels.  PIL computes `trunc(degenerate + factor * (image - degenerate))` in C float32 and so
  do we; the allowance only covers a compiler or vector unit rounding a product differently
  right at an integer.  (With the pinned Pillow these match exactly as well.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from augssl.augment import (
    IDENTITY_ID,
    OP_NAMES,
    OP_SPECS,
    apply_op,
    apply_ops,
    apply_pil_op,
    argument_from_fraction,
    arguments_from_fractions,
    fill_from_mean,
    op_id,
    op_spec,
)
from augssl.augment.ops import FILL_GREY, ArgumentForm, OpKind
from augssl.augment.pil_ops import PIL_OPS, cutout_pil, pad_crop_flip_pil
from augssl.augment.tensor_ops import cutout, pad_crop_flip

BLEND_OPS = ("Brightness", "Contrast", "Color", "Sharpness")
FRACTIONS = (0.0, 1 / 9, 4 / 9, 2 / 3, 1.0)
# Fill colours by channel count: Fashion-MNIST's and CIFAR-10's mean pixel in uint8.
FILLS = {1: (73,), 3: (125, 123, 114)}
GEOMETRIC_ARGUMENTS = {
    "ShearX": 0.3, "ShearY": -0.3, "TranslateX": 0.4, "TranslateY": -0.4, "Rotate": 30.0
}


def smooth_images(count: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random colour fields with mild texture, like downsampled photographs."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, channels, 5, 5, generator=generator) * 255
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    texture = torch.randn(count, channels, size, size, generator=generator) * 8
    return (smooth + texture).clamp(0, 255).round().to(torch.uint8)


def digit_images(count: int, channels: int, size: int) -> torch.Tensor:
    """sklearn's 8x8 handwritten digits, upscaled: large flat regions and hard edges."""
    digits = torch.from_numpy(load_digits().images[:count]).float() * (255 / 16)
    upscaled = F.interpolate(
        digits.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False
    )
    if channels == 3:
        tint = torch.tensor([1.0, 0.8, 0.55]).view(1, 3, 1, 1)
        upscaled = upscaled * tint + 20
    return upscaled.clamp(0, 255).round().to(torch.uint8)


def gradient_images(channels: int, size: int) -> torch.Tensor:
    ramp = torch.linspace(0, 255, size)
    horizontal = ramp.view(1, size).expand(size, size)
    vertical = ramp.view(size, 1).expand(size, size)
    planes = [horizontal, vertical, (horizontal + vertical) / 2][:channels]
    return torch.stack(planes).unsqueeze(0).round().to(torch.uint8)


IMAGE_SETS = {
    "rgb32": lambda: torch.cat(
        [smooth_images(4, 3, 32, 0), digit_images(2, 3, 32), gradient_images(3, 32)]
    ),
    "grey28": lambda: torch.cat(
        [smooth_images(4, 1, 28, 1), digit_images(2, 1, 28), gradient_images(1, 28)]
    ),
    "rgb17": lambda: smooth_images(3, 3, 17, 2),  # odd size: rotation centre between pixels
}


@pytest.fixture(scope="module", params=sorted(IMAGE_SETS))
def images(request) -> torch.Tensor:
    return IMAGE_SETS[request.param]()


def to_pil(image: torch.Tensor) -> Image.Image:
    array = image.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def from_pil(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image)
    pixels = array.reshape(array.shape[0], array.shape[1], -1).copy()
    return torch.from_numpy(pixels).permute(2, 0, 1)


def pil_reference(
    images: torch.Tensor,
    op: str | int,
    arguments: list[float],
    fill: int | tuple[int, ...] = FILL_GREY,
) -> torch.Tensor:
    outputs = [apply_pil_op(to_pil(image), op, arg, fill) for image, arg in zip(images, arguments)]
    return torch.stack([from_pil(output) for output in outputs])


def fill_pixels(images: torch.Tensor, fill: tuple[int, ...]) -> torch.Tensor:
    """(B, H, W) mask of the pixels whose every channel holds the fill colour."""
    return (images == torch.tensor(fill, dtype=torch.uint8).view(1, -1, 1, 1)).all(dim=1)


def assert_matches_pil(name: str, batched: torch.Tensor, reference: torch.Tensor) -> None:
    difference = (batched.int() - reference.int()).abs()
    if name in BLEND_OPS:
        assert difference.max() <= 1, f"{name}: max difference {difference.max()} > 1 grey level"
        assert (difference > 0).float().mean() <= 0.005, f"{name}: more than 0.5% of pixels differ"
    else:
        differing = (difference > 0).float().mean().item()
        assert differing == 0, f"{name}: {differing:.2%} of pixels differ from PIL"


def test_every_table_op_has_a_pil_implementation_in_table_order():
    assert tuple(PIL_OPS) == OP_NAMES


@pytest.mark.parametrize("name", OP_NAMES)
def test_batched_op_matches_pil_reference(name, images):
    signs = (False, True) if op_spec(name).signed else (False,)
    for fraction in FRACTIONS:
        for negate in signs:
            argument = argument_from_fraction(name, fraction, negate)
            fill = FILLS[images.shape[1]]
            batched = apply_op(images, name, argument, fill=fill)
            reference = pil_reference(images, name, [argument] * len(images), fill)
            assert_matches_pil(f"{name}({argument:.4g})", batched, reference)


def test_per_sample_ops_and_arguments_in_one_batch_match_pil():
    images = torch.cat([smooth_images(24, 3, 32, 3), digit_images(16, 3, 32)])
    generator = torch.Generator().manual_seed(4)
    op_ids = torch.randint(0, len(OP_SPECS), (len(images),), generator=generator)
    fractions = torch.rand(len(images), generator=generator, dtype=torch.float64)
    negate = torch.rand(len(images), generator=generator) < 0.5
    arguments = arguments_from_fractions(op_ids, fractions, negate)
    batched = apply_ops(images, op_ids, arguments, fill=FILLS[3])
    assert len(set(op_ids.tolist())) >= 10, "the batch should mix many different ops"
    for index in range(len(images)):
        name = OP_NAMES[int(op_ids[index])]
        scalar_argument = argument_from_fraction(name, float(fractions[index]), bool(negate[index]))
        assert scalar_argument == float(arguments[index]), (
            "PIL and batch must receive the same argument"
        )
        reference = pil_reference(images[index : index + 1], name, [scalar_argument], FILLS[3])
        assert_matches_pil(name, batched[index : index + 1], reference)


def test_apply_op_changes_only_selected_images():
    images = smooth_images(6, 3, 32, 5)
    mask = torch.tensor([True, False, True, False, False, True])
    result = apply_op(images, "Invert", 0.0, mask)
    assert torch.equal(result[mask], 255 - images[mask])
    assert torch.equal(result[~mask], images[~mask])
    by_position = apply_op(
        images, "Rotate", torch.tensor([10.0, -20.0]), torch.tensor([4, 1]), FILLS[3]
    )
    assert torch.equal(by_position[[0, 2, 3, 5]], images[[0, 2, 3, 5]])
    assert torch.equal(by_position[4:5], pil_reference(images[4:5], "Rotate", [10.0], FILLS[3]))
    assert torch.equal(by_position[1:2], pil_reference(images[1:2], "Rotate", [-20.0], FILLS[3]))


def test_dtype_shape_and_input_preserved():
    images = smooth_images(5, 1, 28, 6)
    original = images.clone()
    op_ids = torch.tensor(
        [op_id(name) for name in ("ShearX", "Equalize", "Color", "Sharpness", "Identity")]
    )
    result = apply_ops(images, op_ids, torch.tensor([0.2, 0.0, 1.5, 1.8, 0.0], dtype=torch.float64))
    assert result.dtype == torch.uint8 and result.shape == images.shape
    assert torch.equal(images, original), "the input batch must not be modified"
    assert torch.equal(result[4], images[4])


def test_shear_is_about_the_top_left_corner_with_coefficient_magnitude():
    assert argument_from_fraction("ShearX", 1.0) == pytest.approx(0.3)
    images = gradient_images(3, 32)
    sheared = apply_op(images, "ShearX", 0.3)
    assert torch.equal(sheared[..., 0, :], images[..., 0, :]), "top row stays in place"
    # Bottom row samples x + 0.3 * 31.5 = x + 9.45: it shows the ramp shifted left by 9 pixels
    # and the fill where the source runs out on the right.
    assert torch.equal(sheared[0, 0, -1, :-10], images[0, 0, -1, 9:-1])
    assert (sheared[0, :, -1, -9:] == FILL_GREY).all()


def test_translate_range_is_150_over_331_of_the_image_size():
    assert argument_from_fraction("TranslateX", 1.0) == pytest.approx(150 / 331)
    images = gradient_images(3, 32)
    shifted = apply_op(images, "TranslateX", argument_from_fraction("TranslateX", 1.0, negate=True))
    # 14.5 px: PIL samples x - 14.5 at the centre x + 0.5
    shift = int(np.floor(32 * 150 / 331 + 0.5))
    assert (shifted[..., :shift] == FILL_GREY).all()
    assert torch.equal(shifted[..., shift:], images[..., : 32 - shift])


@pytest.mark.parametrize("channels", (1, 3))
def test_geometric_ops_fill_the_uncovered_area_with_the_given_colour(channels):
    black = torch.zeros(2, channels, 28, 28, dtype=torch.uint8)
    fill = FILLS[channels]
    for name, argument in GEOMETRIC_ARGUMENTS.items():
        moved = apply_op(black, name, torch.tensor([argument, -argument]), fill=fill)
        uncovered = fill_pixels(moved, fill)
        assert (uncovered | (moved == 0).all(dim=1)).all(), f"{name}: only content and fill"
        assert 0.05 < uncovered.float().mean() < 0.6, f"{name}: the fill covers the uncovered area"
        assert torch.equal(moved, pil_reference(black, name, [argument, -argument], fill)), name
    rotated = apply_op(black, "Rotate", torch.tensor([30.0, -30.0]), fill=fill)
    assert fill_pixels(rotated, fill)[:, 0, 0].all() and (rotated[:, :, 14, 14] == 0).all()


def test_one_fill_value_serves_every_channel_and_the_default_is_mid_grey():
    black = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    rotated = apply_op(black, "Rotate", 45.0, fill=90)
    assert torch.equal(rotated, apply_op(black, "Rotate", 45.0, fill=(90,) * 3))
    assert torch.equal(rotated[0], from_pil(apply_pil_op(to_pil(black[0]), "Rotate", 45.0, 90)))
    assert rotated[0, :, 0, 0].tolist() == [90] * 3
    assert apply_op(black, "Rotate", 45.0)[0, :, 0, 0].tolist() == [FILL_GREY] * 3


def test_fill_from_mean_rounds_the_data_sets_mean_to_uint8():
    assert fill_from_mean((0.2860,)) == FILLS[1]  # Fashion-MNIST: black background, mean 73
    assert fill_from_mean((0.4914, 0.4822, 0.4465)) == FILLS[3]  # CIFAR-10
    assert fill_from_mean((0.0, 1.0)) == (0, 255)
    with pytest.raises(ValueError, match=r"mean.*\[0, 1\]"):
        fill_from_mean((73.0,))


def test_a_fill_that_does_not_fit_the_images_is_refused():
    images = smooth_images(2, 3, 16, 12)
    with pytest.raises(ValueError, match="fill must hold 1 or 3 values"):
        apply_op(images, "Rotate", 10.0, fill=(1, 2))
    with pytest.raises(ValueError, match=r"fill values must lie in 0\.\.255"):
        cutout(images, torch.tensor([4, 4]), torch.tensor([4, 4]), 4, fill=256)
    with pytest.raises(ValueError, match="fill must hold 1 or 3 values"):
        cutout_pil(to_pil(images[0]), 4, 4, 4, fill=(1, 2))


@pytest.mark.parametrize("scale", (9, 30))
def test_posterize_never_keeps_fewer_than_4_bits(scale):
    bits = [argument_from_fraction("Posterize", level / scale) for level in range(scale + 1)]
    assert min(bits) == 4 and max(bits) == 8 and bits == sorted(bits, reverse=True)
    levels = torch.arange(scale + 1, dtype=torch.float64)
    posterize_ids = torch.full_like(levels, op_id("Posterize"), dtype=torch.int64)
    batched_bits = arguments_from_fractions(posterize_ids, levels / scale)
    assert batched_bits.tolist() == bits
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    strongest = apply_op(ramp, "Posterize", 4.0)
    assert sorted(strongest.unique().tolist()) == list(range(0, 256, 16)), "4 bits keep 16 levels"


def test_magnitude_table_matches_autoaugment_ranges():
    expected_top = {"ShearX": 0.3, "Rotate": 30.0, "Solarize": 0.0, "Color": 1.9, "Brightness": 1.9}
    for name, value in expected_top.items():
        assert argument_from_fraction(name, 1.0) == pytest.approx(value)
    assert argument_from_fraction("Contrast", 1.0, negate=True) == pytest.approx(0.1)
    assert argument_from_fraction("Solarize", 0.0) == 256.0, "level 0 solarizes nothing"
    for spec in OP_SPECS:
        assert spec.signed == (spec.form in (ArgumentForm.SIGNED, ArgumentForm.FACTOR))
        assert argument_from_fraction(spec.name, 0.0) in (0.0, 1.0, 8.0, 256.0), (
            "level 0 is a no-op"
        )


def test_sharpness_leaves_the_border_unchanged_and_color_ignores_grey():
    images = smooth_images(3, 3, 32, 7)
    sharpened = apply_op(images, "Sharpness", 1.9)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert torch.equal(sharpened[..., border], images[..., border])
    assert not torch.equal(sharpened, images)
    grey = smooth_images(3, 1, 28, 8)
    assert torch.equal(apply_op(grey, "Color", 0.1), grey)


@pytest.mark.parametrize("channels,size", ((3, 32), (1, 28)))
def test_pad_crop_flip_matches_pil(channels, size):
    images = smooth_images(6, channels, size, 9)
    offset_y = torch.tensor([0, 8, 4, 3, 8, 0])
    offset_x = torch.tensor([0, 8, 4, 6, 0, 8])
    flip = torch.tensor([False, True, False, True, True, False])
    batched = pad_crop_flip(images, offset_y, offset_x, flip, pad=4)
    for i, image in enumerate(images):
        reference = pad_crop_flip_pil(
            to_pil(image), int(offset_y[i]), int(offset_x[i]), bool(flip[i]), 4
        )
        assert torch.equal(batched[i], from_pil(reference))
    assert torch.equal(batched[2], images[2]), "centred crop without flip is the identity"
    assert torch.equal(batched[0, :, 4:, 4:], images[0, :, :-4, :-4])
    assert torch.equal(batched[0, :, 3, 4:], images[0, :, 1, :-4]), (
        "padding reflects, edge not repeated"
    )


@pytest.mark.parametrize("channels", (1, 3))
def test_cutout_matches_pil_and_is_clipped(channels):
    images = smooth_images(4, channels, 32, 10) // 4 + 160  # values >= 160: fill pixels stand out
    fill = FILLS[channels]
    centre_y = torch.tensor([0, 16, 31, 10])
    centre_x = torch.tensor([0, 16, 5, 31])
    batched = cutout(images, centre_y, centre_x, 16, fill=fill)
    for i, image in enumerate(images):
        reference = cutout_pil(to_pil(image), int(centre_y[i]), int(centre_x[i]), 16, fill=fill)
        assert torch.equal(batched[i], from_pil(reference))
    covered = fill_pixels(batched, fill)
    assert covered.sum(dim=(1, 2)).tolist() == [8 * 8, 16 * 16, 9 * 13, 16 * 9]
    assert torch.equal(cutout(images, centre_y, centre_x, 0, fill=fill), images)
    assert (cutout(images, centre_y, centre_x, 16) == FILL_GREY).all(dim=1).sum() == covered.sum()


def test_unknown_ops_and_bad_batches_raise_clear_errors():
    images = smooth_images(2, 3, 32, 11)
    with pytest.raises(ValueError, match="unknown augmentation operation 'Blur'.*ShearX"):
        apply_op(images, "Blur", 1.0)
    with pytest.raises(ValueError, match="operation ids must lie in 0..14"):
        apply_ops(images, torch.tensor([0, 15]), torch.zeros(2))
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        apply_op(images.float(), "Invert", 0.0)
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        apply_op(images[:, :2], "Invert", 0.0)
    with pytest.raises(ValueError, match="2 per-sample values"):
        apply_ops(images, torch.tensor([IDENTITY_ID] * 2), torch.zeros(3))
    with pytest.raises(ValueError, match="unsupported PIL image mode 'RGBA'"):
        apply_pil_op(Image.new("RGBA", (8, 8)), "Invert")


def test_op_kinds_cover_the_table():
    kinds = {spec.name: spec.kind for spec in OP_SPECS}
    assert {name for name, kind in kinds.items() if kind is OpKind.GEOMETRIC} == {
        "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"
    }
    assert kinds["Identity"] is OpKind.IDENTITY
