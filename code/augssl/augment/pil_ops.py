"""Reference implementations of the augmentation operations on PIL images.

These follow the AutoAugment semantics of the widely used PIL implementations: affine
operations use PIL's NEAREST resampling about the top-left corner (rotation about the centre),
the uncovered area takes the fill colour (see `ops`; training passes the data set's mean), and
enhancement ops use `PIL.ImageEnhance`.  Every function is deterministic; randomness lives in
`pil_transforms`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from augssl.augment.ops import FILL_GREY, Fill, fill_per_channel, op_spec

SUPPORTED_MODES = ("L", "RGB")


def check_pil_image(image: Image.Image) -> None:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.mode not in SUPPORTED_MODES:
        raise ValueError(
            f"unsupported PIL image mode {image.mode!r}; expected one of {SUPPORTED_MODES} "
            "(convert with image.convert('RGB') or image.convert('L'))"
        )


def fill_colour(image: Image.Image, fill: Fill) -> int | tuple[int, ...]:
    """The fill in the form PIL takes for the image's mode: a number for 'L', a tuple for 'RGB'."""
    values = fill_per_channel(fill, len(image.getbands()))
    return values[0] if image.mode == "L" else values


def _affine(image: Image.Image, coefficients: tuple[float, ...], fill: Fill) -> Image.Image:
    # PIL maps each output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f).
    return image.transform(
        image.size,
        Image.Transform.AFFINE,
        coefficients,
        resample=Image.Resampling.NEAREST,
        fillcolor=fill_colour(image, fill),
    )


def shear_x(image: Image.Image, coefficient: float, fill: Fill) -> Image.Image:
    return _affine(image, (1.0, coefficient, 0.0, 0.0, 1.0, 0.0), fill)


def shear_y(image: Image.Image, coefficient: float, fill: Fill) -> Image.Image:
    return _affine(image, (1.0, 0.0, 0.0, coefficient, 1.0, 0.0), fill)


def translate_x(image: Image.Image, fraction: float, fill: Fill) -> Image.Image:
    return _affine(image, (1.0, 0.0, fraction * image.width, 0.0, 1.0, 0.0), fill)


def translate_y(image: Image.Image, fraction: float, fill: Fill) -> Image.Image:
    return _affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, fraction * image.height), fill)


def rotate(image: Image.Image, degrees: float, fill: Fill) -> Image.Image:
    return image.rotate(
        degrees, resample=Image.Resampling.NEAREST, fillcolor=fill_colour(image, fill)
    )


# The remaining ops cover every pixel from the image itself and ignore the fill.
def auto_contrast(image: Image.Image, _: float, fill: Fill) -> Image.Image:
    return ImageOps.autocontrast(image)


def invert(image: Image.Image, _: float, fill: Fill) -> Image.Image:
    return ImageOps.invert(image)


def equalize(image: Image.Image, _: float, fill: Fill) -> Image.Image:
    return ImageOps.equalize(image)


def solarize(image: Image.Image, threshold: float, fill: Fill) -> Image.Image:
    return ImageOps.solarize(image, threshold)


def posterize(image: Image.Image, bits: float, fill: Fill) -> Image.Image:
    return ImageOps.posterize(image, int(bits))


def contrast(image: Image.Image, factor: float, fill: Fill) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def color(image: Image.Image, factor: float, fill: Fill) -> Image.Image:
    return ImageEnhance.Color(image).enhance(factor)


def brightness(image: Image.Image, factor: float, fill: Fill) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def sharpness(image: Image.Image, factor: float, fill: Fill) -> Image.Image:
    return ImageEnhance.Sharpness(image).enhance(factor)


def identity(image: Image.Image, _: float, fill: Fill) -> Image.Image:
    return image


# Every op is called as op(image, argument, fill).
PIL_OPS: dict[str, Callable[[Image.Image, float, Fill], Image.Image]] = {
    "Identity": identity,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Rotate": rotate,
    "AutoContrast": auto_contrast,
    "Invert": invert,
    "Equalize": equalize,
    "Solarize": solarize,
    "Posterize": posterize,
    "Contrast": contrast,
    "Color": color,
    "Brightness": brightness,
    "Sharpness": sharpness,
}


def apply_pil_op(
    image: Image.Image, op: str | int, argument: float = 0.0, fill: Fill = FILL_GREY
) -> Image.Image:
    """Apply one operation (by name or table index) with its argument (see `ops`); `fill`
    colours the pixels geometric ops uncover."""
    check_pil_image(image)
    fill_colour(image, fill)  # check the fill even for ops that do not use it
    return PIL_OPS[op_spec(op).name](image, argument, fill)


def cutout_pil(
    image: Image.Image, centre_y: int, centre_x: int, size: int, fill: Fill = FILL_GREY
) -> Image.Image:
    """Square of side `size` in the fill colour centred at (centre_y, centre_x), clipped to the
    image."""
    check_pil_image(image)
    colour = fill_colour(image, fill)
    if size <= 0:
        return image
    top, left = centre_y - size // 2, centre_x - size // 2
    box = (max(left, 0), max(top, 0), min(left + size, image.width), min(top + size, image.height))
    if box[0] >= box[2] or box[1] >= box[3]:
        return image
    result = image.copy()
    result.paste(colour, box)
    return result


def pad_crop_flip_pil(
    image: Image.Image, offset_y: int, offset_x: int, flip: bool, pad: int
) -> Image.Image:
    """Reflect-pad by `pad`, crop the original size at (offset_y, offset_x), optionally mirror.

    Offsets are positions in the padded image, 0..2*pad; (pad, pad) is the centred crop.
    """
    check_pil_image(image)
    array = np.asarray(image)
    height, width = array.shape[:2]
    if pad > 0:
        widths = ((pad, pad), (pad, pad)) + (((0, 0),) if array.ndim == 3 else ())
        array = np.pad(array, widths, mode="reflect")
    array = array[offset_y : offset_y + height, offset_x : offset_x + width]
    if flip:
        array = array[:, ::-1]
    return Image.fromarray(np.ascontiguousarray(array))
