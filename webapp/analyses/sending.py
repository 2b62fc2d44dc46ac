"""A run's images over HTTP, for the pages, the shared pages and the API alike: a stored one (its
photo's original or thumbnail, its annotated image) or one drawn for what the viewer shows (a
confidence and classes). How files are sent is `webapp/web/delivery.py`'s."""
from typing import Optional

from webapp.analyses import lookups, viewer
from webapp.models import Run
from webapp.vision.images import FORMAT_OF
from webapp.vision.metadata import without_metadata
from webapp.web import delivery

MIMETYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def drawn(variant: str, args) -> bool:
    """Whether the query asks for the annotated image drawn for a confidence or classes."""
    return variant == "annotated" and ("conf" in args or "classes" in args)


def send_run_image(run: Run, variant: str, args, download: bool = False, name: Optional[str] = None):
    """The image a query asks for: drawn for its `conf` and `classes` (the run's detections
    loaded), or stored."""
    if drawn(variant, args):
        return send_view(run, args, download, name)
    return send_image(run, variant, download, name)


def send_image(run: Run, variant: str, download: bool = False, name: Optional[str] = None):
    """One of a run's stored images; 404 for an unknown variant or one not made (yet)."""
    path = lookups.stored_image(run, variant)
    name = name or f"{delivery.download_stem(run.photo.original_filename)}-{variant}{path.suffix if path else ''}"
    return delivery.send_stored(path, name, download, missing=f"This analysis has no {variant} image (yet).")


def send_view(run: Run, args, download: bool = False, name: Optional[str] = None):
    """The annotated image drawn for the viewer's confidence and classes (`conf`, `classes` in
    `args`); drawn again only when the browser does not have it."""
    min_conf, classes = delivery.view_params(run.conf, args)
    tag = viewer.view_tag(run, min_conf, classes)
    name = name or f"{delivery.download_stem(run.photo.original_filename)}-annotated-{min_conf:.2f}.jpg"
    return delivery.send_drawn(tag, lambda: viewer.draw_view(run, min_conf, classes),
                               download_name=name if download else None)


def public_extension(run: Run) -> str:
    """The extension of what `send_public_photo` sends."""
    return run.photo.shown_path.rsplit(".", 1)[-1]


def send_public_photo(run: Run):
    """The photo for someone other than its owner (a share link): what pages show of it, with no
    metadata at all (no location, camera serial, names or comments). A rendition has none; an
    original a browser shows as it is is sent with its metadata blocks left out, its coded pixels
    untouched."""
    photo, extension = run.photo, public_extension(run)
    path = lookups.stored_image(run, "display")  # the rendition, or the original
    if photo.display_path or path is None:
        return delivery.send_stored(path, f"photo.{extension}", missing=MISSING)
    return delivery.send_drawn(f"public-{photo.sha256[:32]}",
                               lambda: without_metadata(path.read_bytes(), FORMAT_OF[extension]),
                               mimetype=MIMETYPES[extension])


MISSING = "This photo's file is missing."
