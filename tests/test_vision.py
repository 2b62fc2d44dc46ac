import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.images import HOSTILE, encode, sample, with_orientation
from webapp.vision.draw import class_color_hex, draw_boxes, encode_jpeg
from webapp.vision.detector import Box
from webapp.vision.images import ImageRejected, decode
from webapp.vision.pixels import rendition, thumbnail

LIMIT = 40_000_000


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF"])
def test_every_supported_format_decodes_to_upright_rgb(fmt):
    decoded = decode(encode(sample(), fmt), LIMIT)
    assert decoded.pixels.shape == (64, 96, 3) and decoded.pixels.dtype == np.uint8
    assert decoded.format == fmt


@pytest.mark.parametrize("case", HOSTILE.keys())
def test_hostile_files_are_rejected_with_a_reason(case):
    _, data, reason = HOSTILE[case]
    with pytest.raises(ImageRejected) as info:
        decode(data, LIMIT)
    assert re.search(reason, str(info.value))


def test_pixel_limit_is_checked_before_decoding():
    data = encode(sample(200, 100), "PNG")
    with pytest.raises(ImageRejected, match="200×100 pixels"):
        decode(data, max_pixels=10_000)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    upright = sample(120, 60)
    decoded = decode(with_orientation(upright, orientation), LIMIT)
    assert (decoded.width, decoded.height) == (120, 60)
    blue, _, red = decoded.pixels[5, 5]
    assert red > 180 and blue < 80, "the red block must be back at the top left"
    assert decoded.orientation == orientation


def test_transparent_png_is_flattened_on_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    decoded = decode(encode(image, "PNG"), LIMIT)
    assert tuple(decoded.pixels[5, 5]) == (255, 255, 255)


def test_upright_web_images_need_no_rendition():
    assert rendition(decode(encode(sample(), "JPEG"), LIMIT)) is None


def test_rotated_or_non_web_images_get_an_upright_rendition():
    shown, ext = rendition(decode(with_orientation(sample(120, 60), 6), LIMIT))
    assert ext == "jpg" and Image.open(io.BytesIO(shown)).size == (120, 60)
    assert rendition(decode(encode(sample(), "BMP"), LIMIT))[1] == "png"


def test_thumbnail_is_a_small_jpeg():
    thumb = Image.open(io.BytesIO(thumbnail(np.zeros((900, 1600, 3), np.uint8), 400)))
    assert thumb.format == "JPEG" and thumb.size == (400, 225)


def test_bgr_array_is_what_opencv_expects():
    array = decode(encode(sample(), "PNG"), LIMIT).pixels
    assert array.shape == (64, 96, 3) and array.dtype == np.uint8
    assert tuple(array[5, 5]) == (20, 20, 230)


def test_drawing_keeps_size_and_marks_the_box():
    image = Image.new("RGB", (200, 100))
    drawn = draw_boxes(image, [Box(0, "person", 0.9, 10, 20, 110, 90)])
    assert drawn.size == image.size and drawn.getpixel((10, 55)) == (0xFF, 0x38, 0x38) and not image.getbbox()
    assert encode_jpeg(drawn)[:2] == b"\xff\xd8"


def test_each_class_keeps_one_colour():
    assert class_color_hex(0) == class_color_hex(0) != class_color_hex(1)


def test_the_80_coco_classes_get_visibly_distinct_colours():
    rgb = np.array([[[int(class_color_hex(i)[k:k + 2], 16) / 255 for k in (1, 3, 5)] for i in range(80)]],
                   np.float32)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0]
    distances = np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=-1) + np.eye(80) * 1000
    assert distances.min() >= 19.5  # CIE76 ΔE: far past "just noticeable" (about 2.3)
    assert class_color_hex(27) != class_color_hex(67)  # tie, cell phone: one colour in a 20-colour cycle


def test_rejection_does_not_go_through_ultralytics_pil_patch():
    import ultralytics.utils.patches  # noqa: F401  (patches PIL.Image.open on import)

    with pytest.raises(ImageRejected, match="not an image"):
        decode(b"plain text, not a picture", LIMIT)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_a_16_bit_grey_photo_keeps_its_high_byte_with_little_memory_beside_it(mode):
    """A worker decodes 40-megapixel photos: the 16-bit grey case must not hold a 64-bit copy of
    them (about 16 bytes a pixel at 40 MP is 640 MB) on the way to its 8-bit pixels."""
    import tracemalloc

    height, width = 1000, 3000
    values = (np.arange(height * width, dtype=np.uint32).reshape(height, width) * 37 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    data = buffer.getvalue() if image.mode == mode else encode(image.convert(mode), "TIFF")
    tracemalloc.start()
    try:
        decoded = decode(data, LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(decoded.pixels[:, :, 1], (values >> 8).astype(np.uint8))
    # the BGR result and the RGB array it is made from (3 bytes a pixel each), the grey values as
    # read (2 or 4): no 64-bit copy
    assert peak / (height * width) < 9


def _big_jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    return with_orientation(sample(160, 120).convert("RGB").resize((width, height), Image.Resampling.BICUBIC),
                            orientation)


def test_a_large_jpeg_is_decoded_reduced_for_detection_knowing_its_full_size():
    decoded = decode(_big_jpeg(4032, 3024), 50_000_000, at_least=640)
    assert decoded.pixels.shape == (756, 1008, 3)  # libjpeg's 1/4 scale: the smallest at least 640 long
    assert (decoded.width, decoded.height) == (4032, 3024) and decoded.geometry.scale == (4.0, 4.0)


def test_a_reduced_decode_of_a_turned_phone_photo_is_upright():
    decoded = decode(_big_jpeg(3024, 4032, orientation=6), 50_000_000, at_least=640)
    assert decoded.pixels.shape == (1008, 756, 3) and (decoded.width, decoded.height) == (3024, 4032)
    full = decode(_big_jpeg(3024, 4032, orientation=6), 50_000_000).pixels
    small = cv2.resize(full, (756, 1008), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - decoded.pixels.astype(int)).mean() < 4  # the same picture, smaller


@pytest.mark.parametrize("data", [encode(sample(4032, 3024), "PNG"), encode(sample(1200, 900), "JPEG")],
                         ids=["png (no reduced decoding)", "jpeg under twice the size asked"])
def test_what_cannot_or_need_not_be_reduced_is_decoded_whole(data):
    decoded = decode(data, 50_000_000, at_least=640)
    assert decoded.pixels.shape[1] == decoded.width and decoded.geometry.scale == (1.0, 1.0)


def test_without_a_size_asked_a_large_jpeg_is_decoded_whole():
    assert decode(_big_jpeg(4032, 3024), 50_000_000).pixels.shape == (3024, 4032, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_reduced_decode_places_what_it_finds_exactly_in_the_photo_s_pixels(orientation):
    """Sides that are no multiple of libjpeg's 1/8: the last reduced pixel covers part of a block,
    on the right or bottom of the stored photo, which turning it puts on the left or top."""
    upright = np.zeros((3001, 5127), np.uint8)
    upright[700:1000, 3900:4500] = 255  # a marker: its centre is at (4200, 850) in the photo's pixels
    decoded = decode(with_orientation(Image.fromarray(upright).convert("RGB"), orientation), 50_000_000,
                     at_least=640)
    assert decoded.reduced and (decoded.width, decoded.height) == (5127, 3001)
    weight = decoded.pixels[:, :, 0].astype(float)
    weight[weight < 16] = 0  # the black around it, give or take JPEG's noise
    ys, xs = np.indices(weight.shape)
    x, y = (xs * weight).sum() / weight.sum() + 0.5, (ys * weight).sum() / weight.sum() + 0.5  # pixel centres
    [found] = decoded.geometry.place([Box(0, "marker", 1.0, x, y, x, y)])
    assert abs(found.x1 - 4200) < 0.75 and abs(found.y1 - 850) < 0.75
