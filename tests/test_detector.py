"""The YOLO detector on real photos (COCO model from ../shared/models) and its failure modes."""
from collections import Counter

import pytest
from PIL import Image

from tests.images import with_orientation
from webapp.vision.detector import Detector, DetectorError, DetectorSettings, shared_detector
from webapp.vision.images import decode

LIMIT = 40_000_000


@pytest.fixture
def detector(coco_model):
    return shared_detector(DetectorSettings(model=coco_model, device="cpu"))


def labels_at(result, conf=0.25):
    return Counter(b.label for b in result.boxes if b.confidence >= conf)


def detect_file(detector, path):
    return detector.detect(decode(path.read_bytes(), LIMIT).pixels)


def test_bus_photo_shows_a_bus_and_at_least_four_people(detector, assets):
    labels = labels_at(detect_file(detector, assets / "bus.jpg"))
    assert labels["bus"] >= 1 and labels["person"] >= 4


def test_zidane_photo_shows_two_people_and_a_tie(detector, assets):
    labels = labels_at(detect_file(detector, assets / "zidane.jpg"))
    assert labels["person"] >= 2 and labels["tie"] >= 1


def test_results_are_plain_boxes_in_image_pixels(detector, assets):
    result = detect_file(detector, assets / "bus.jpg")
    width, height = Image.open(assets / "bus.jpg").size
    assert result.boxes == sorted(result.boxes, key=lambda b: -b.confidence)
    for box in result.boxes:
        assert 0 <= box.x1 < box.x2 <= width + 1 and 0 <= box.y1 < box.y2 <= height + 1
        assert 0.05 <= box.confidence <= 1 and box.label == result.names[box.class_id]
    assert set(result.timings_ms) >= {"preprocess", "inference", "postprocess"}


def test_low_confidence_detections_are_kept_for_filtering(detector, assets):
    result = detect_file(detector, assets / "bus.jpg")
    assert any(b.confidence < 0.25 for b in result.boxes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_same_detections_on_the_upright_image(detector, assets, orientation):
    upright = Image.open(assets / "bus.jpg").convert("RGB")
    reference = detector.detect(decode((assets / "bus.jpg").read_bytes(), LIMIT).pixels)
    rotated = decode(with_orientation(upright, orientation), LIMIT)
    assert (rotated.width, rotated.height) == upright.size
    result = detector.detect(rotated.pixels)
    assert labels_at(result) == labels_at(reference)
    ref_bus = next(b for b in reference.boxes if b.label == "bus")
    bus = next(b for b in result.boxes if b.label == "bus")
    for a, b in zip((ref_bus.x1, ref_bus.y1, ref_bus.x2, ref_bus.y2), (bus.x1, bus.y1, bus.x2, bus.y2), strict=True):
        assert abs(a - b) < 15, "the bus must be boxed in the same place on the upright image"


def test_the_model_is_loaded_once_and_reused(detector, assets):
    first = detector.load()
    detect_file(detector, assets / "zidane.jpg")
    assert detector.load() is first
    assert shared_detector(detector.settings) is detector


def test_a_missing_model_path_fails_fast_with_a_clear_reason(tmp_path):
    detector = Detector(DetectorSettings(model=str(tmp_path / "missing" / "model.pt"), device="cpu"))
    with pytest.raises(DetectorError, match="does not exist"):
        detector.load()


def test_an_undownloadable_model_name_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    detector = Detector(DetectorSettings(model="yolo11x-does-not-exist.pt", device="cpu"))
    with pytest.raises(DetectorError, match="not on disk and downloads are turned off"):
        detector.load()


def test_a_random_weight_model_runs_without_any_download(assets):
    detector = Detector(DetectorSettings(model="yolo11n.yaml", device="cpu"))
    result = detect_file(detector, assets / "bus.jpg")
    assert len(result.names) == 80 and result.device == "cpu"


def test_boxes_hold_plain_python_numbers(detector, assets):
    box = detect_file(detector, assets / "bus.jpg").boxes[0]
    values = (box.class_id, box.confidence, box.x1, box.y1, box.x2, box.y2)
    assert [type(v) for v in values] == [int, float, float, float, float, float]
