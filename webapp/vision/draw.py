"""Annotated images: boxes with label and confidence, one stable colour per class, drawn with
Pillow (the web tier draws them when they are asked for, and carries no NumPy or OpenCV).

Drawn as the page's live overlay draws them (`analyses.viewer.overlay_boxes`): a frame `line`
pixels wide centred on the box's edge; its label, at seven times the line's size, on a band of the
class's colour in black or white text, above the box where there is room, else inside it."""
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from webapp.vision.detector import Box
from webapp.vision.images import encode

# 80 colours, one per COCO class, picked greedily so that each is as far as it can be (CIELAB)
# from those before it, lightness 30-88 so labels stay legible: any two differ by at least
# ΔE 20 (a 20-colour cycle made tie and cell phone, person and a dozen others, the same colour).
# A model with more classes cycles through them.
PALETTE = (
    "FF3838", "00FF00", "0000FF", "00D2FF", "5A6900", "782D78", "FFC3B4", "3CF0A5", "FF0FF0", "FFD200",
    "0069FF", "2D5A5A", "873C2D", "FF2D96", "D2B4FF", "96D22D", "D2780F", "0069B4", "96C3A5", "7800B4",
    "E1D278", "FF87FF", "00874B", "FF7887", "967887", "A50F4B", "00D24B", "3CF0E1", "A5875A", "C30FA5",
    "B400FF", "E178B4", "8769D2", "960000", "87C369", "B49600", "C3D2F0", "008700", "69B4FF", "00A5A5",
    "F09669", "875A00", "F0005A", "2D3CF0", "5A4B2D", "5A4B78", "B469FF", "5A96B4", "F05A00", "5A784B",
    "873C5A", "D2D23C", "0087FF", "87F000", "E1A5C3", "4BC396", "D25A3C", "0F5A00", "004BB4", "FFB43C",
    "A578B4", "00B45A", "789600", "C37878", "E1D2A5", "5A2D96", "969687", "B40F78", "87F078", "B45AB4",
    "005A3C", "87D2E1", "1E4B69", "FF0000", "C32DE1", "8796F0", "D296FF", "FF00B4", "87964B", "3C3CC3",
)
LABEL_SCALE = 7  # a label's size in the boxes' line widths (the overlay's `label_font`)
BAND = 1.25  # a label's band: this many times its size tall


def class_color_hex(class_id: int) -> str:
    return "#" + PALETTE[class_id % len(PALETTE)]


def _rgb(class_id: int) -> tuple[int, int, int]:
    h = PALETTE[class_id % len(PALETTE)]
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _readable_on(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on a light colour, white on a dark one."""
    return (0, 0, 0) if sum(color) > 382 else (255, 255, 255)


def text_color_hex(class_id: int) -> str:
    """The colour of a label's text on its class's colour, as `draw_boxes` draws it."""
    return "#000000" if _readable_on(_rgb(class_id)) == (0, 0, 0) else "#ffffff"


def line_width(height: int, width: int) -> int:
    """How thick a box is drawn on an image of this size, in its pixels."""
    return max(round((height + width) / 2 * 0.003), 2)


def label_size(height: int, width: int) -> int:
    """A label's font size on an image of this size, in its pixels."""
    return line_width(height, width) * LABEL_SCALE


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font (Aileron, inside Pillow: no font file on the system needed) at `size` px."""
    return ImageFont.load_default(size)


def draw_boxes(image: Image.Image, boxes: list[Box]) -> Image.Image:
    """A copy of the (RGB) image with each box, its label and confidence drawn on it, the most
    confident last (on top)."""
    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    line, size = line_width(canvas.height, canvas.width), label_size(canvas.height, canvas.width)
    font, half, band = _font(size), line / 2, size * BAND
    for box in sorted(boxes, key=lambda b: b.confidence):
        color = _rgb(box.class_id)
        draw.rectangle((round(box.x1 - half), round(box.y1 - half), round(box.x2 + half) - 1,
                        round(box.y2 + half) - 1), outline=color, width=line)
        text = f"{box.label} {box.confidence:.2f}"
        top = box.y1 - band if box.y1 - band >= 0 else box.y1
        draw.rectangle((round(box.x1), round(top), round(box.x1 + draw.textlength(text, font=font) + size * 0.5) - 1,
                        round(top + band) - 1), fill=color)
        draw.text((box.x1 + size * 0.25, top + size), text, fill=_readable_on(color), font=font, anchor="ls")
    return canvas


def draw_frames(small: Image.Image, boxes: list[Box], scale: float) -> Image.Image:
    """A copy of a small image (a thumbnail) with each box's frame drawn in its class's colour,
    from boxes in the pixels of the image it was made from (`scale`: small over full size): the
    result at a glance, without labels (too small to read there; the card lists them)."""
    canvas = small.copy()
    draw = ImageDraw.Draw(canvas)
    for box in sorted(boxes, key=lambda b: b.confidence):
        draw.rectangle((round(box.x1 * scale) - 1, round(box.y1 * scale) - 1, round(box.x2 * scale),
                        round(box.y2 * scale)), outline=_rgb(box.class_id), width=2)
    return canvas


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """An (annotated) image as a JPEG."""
    return encode(image, "JPEG", quality=quality)
