"""Phone photos for the benchmarks: 12 MP JPEGs made from COCO128, as people really upload them.

Each COCO photo (cycled, mirrored on the second pass, when more are asked for) is scaled
(cubic) and centre-cropped to 4032x3024, written as a JPEG at quality 90 with a phone's EXIF
(make, model, date taken, GPS); every other one is stored as a phone held upright stores it: the
pixels turned a quarter to the left and EXIF orientation 6 (turn right to show). The upright
pixels are the same either way, so detections compare across the set.

Usage:
    python bench/phone_photos.py [--images 128] [--out bench/phone-photos] [--source DIR]
bench/throughput.py makes them itself when they are missing (its "phone" workload).
"""
import argparse
import io
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "datasets" / "coco128" / "images" / "train2017"
WIDTH, HEIGHT = 4032, 3024
QUALITY = 90
ORIENTATION, MAKE, MODEL, DATE_TAKEN, GPS = 0x0112, 0x010F, 0x0110, 0x9003, 0x8825


def to_phone_frame(image: Image.Image) -> Image.Image:
    """`image` scaled to cover 4032x3024 and cropped to it, centred."""
    image = image.convert("RGB")
    scale = max(WIDTH / image.width, HEIGHT / image.height)
    size = (round(image.width * scale), round(image.height * scale))
    scaled = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - WIDTH) // 2, (size[1] - HEIGHT) // 2
    return scaled.crop((left, top, left + WIDTH, top + HEIGHT))


def phone_jpeg(image: Image.Image, index: int) -> bytes:
    """A JPEG as a phone writes it; every other one held upright (orientation 6)."""
    exif = Image.Exif()
    exif[MAKE], exif[MODEL] = "Google", "Pixel 8"
    exif.get_ifd(0x8769)[DATE_TAKEN] = (datetime(2026, 6, 1, 9) + timedelta(minutes=7 * index)).strftime(
        "%Y:%m:%d %H:%M:%S")
    exif.get_ifd(GPS).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    upright = index % 2 == 1
    exif[ORIENTATION] = 6 if upright else 1
    stored = image.transpose(Image.Transpose.ROTATE_90) if upright else image  # turn left; 6 says turn right
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=QUALITY, exif=exif.tobytes())
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    parser.add_argument("--out", default=str(ROOT / "bench" / "phone-photos"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(Path(args.source).glob("*.jpg"))
    if not sources:
        raise SystemExit(f"No JPEGs in {args.source}")
    total = 0
    for index in range(args.images):
        image = to_phone_frame(Image.open(sources[index % len(sources)]))
        if (index // len(sources)) % 2:  # past the end of the source: its mirror image, a new photo
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        data = phone_jpeg(image, index)
        (out / f"phone-{index:03d}.jpg").write_bytes(data)
        total += len(data)
    print(f"{args.images} photos of {WIDTH}x{HEIGHT} in {out} ({total / args.images / 1e6:.1f} MB each on average)")


if __name__ == "__main__":
    main()
