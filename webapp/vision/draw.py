"""Annotated images: boxes with label and confidence, one stable colour per class."""
import cv2
import numpy as np

from webapp.vision.detector import Box

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


def class_color_hex(class_id: int) -> str:
    return "#" + PALETTE[class_id % len(PALETTE)]


def _bgr(class_id: int) -> tuple[int, int, int]:
    h = PALETTE[class_id % len(PALETTE)]
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def _readable_on(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on a light colour, white on a dark one (BGR or RGB alike)."""
    return (0, 0, 0) if sum(color) > 382 else (255, 255, 255)


def text_color_hex(class_id: int) -> str:
    """The colour of a label's text on its class's colour, as `draw_boxes` draws it."""
    return "#000000" if _readable_on(_bgr(class_id)) == (0, 0, 0) else "#ffffff"


def line_width(height: int, width: int) -> int:
    """How thick a box is drawn on an image of this size, in its pixels."""
    return max(round((height + width) / 2 * 0.003), 2)


def draw_boxes(image_bgr: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """A copy of the image with each box, its label and confidence drawn on it."""
    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    line = line_width(height, width)
    font_scale = max(line / 3, 0.5)
    font_thickness = max(line - 1, 1)
    for box in sorted(boxes, key=lambda b: b.confidence):
        color = _bgr(box.class_id)
        p1, p2 = (int(box.x1), int(box.y1)), (int(box.x2), int(box.y2))
        cv2.rectangle(canvas, p1, p2, color, line, cv2.LINE_AA)
        text = f"{box.label} {box.confidence:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thickness)
        above = p1[1] - th - baseline - 3 >= 0
        top = p1[1] - th - baseline - 3 if above else p1[1]
        cv2.rectangle(canvas, (p1[0], top), (p1[0] + tw + 4, top + th + baseline + 3), color, -1)
        text_color = _readable_on(color)
        cv2.putText(canvas, text, (p1[0] + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, text_color, font_thickness, cv2.LINE_AA)
    return canvas


def draw_frames(small_bgr: np.ndarray, boxes: list[Box], scale: float) -> np.ndarray:
    """A copy of a small image (a thumbnail) with each box's frame drawn in its class's colour,
    from boxes in the pixels of the image it was made from (`scale`: small over full size): the
    result at a glance, without labels (too small to read there; the card lists them)."""
    canvas = small_bgr.copy()
    for box in sorted(boxes, key=lambda b: b.confidence):
        p1 = (int(round(box.x1 * scale)), int(round(box.y1 * scale)))
        p2 = (int(round(box.x2 * scale)), int(round(box.y2 * scale)))
        cv2.rectangle(canvas, p1, p2, _bgr(box.class_id), 2, cv2.LINE_AA)
    return canvas


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the annotated image")
    return buffer.tobytes()
