"""Annotated images: boxes with label and confidence, one stable colour per class."""
import cv2
import numpy as np

from webapp.vision.detector import Box

# The Ultralytics palette (hex, RGB), so our colours match what its own tools draw.
PALETTE = (
    "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334",
    "00D4BB", "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF",
    "FF95C8", "FF37C7",
)


def class_color_hex(class_id: int) -> str:
    return "#" + PALETTE[class_id % len(PALETTE)]


def _bgr(class_id: int) -> tuple[int, int, int]:
    h = PALETTE[class_id % len(PALETTE)]
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def draw_boxes(image_bgr: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """A copy of the image with each box, its label and confidence drawn on it."""
    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    line = max(round((height + width) / 2 * 0.003), 2)
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
        text_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
        cv2.putText(canvas, text, (p1[0] + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, text_color, font_thickness, cv2.LINE_AA)
    return canvas


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the annotated image")
    return buffer.tobytes()
