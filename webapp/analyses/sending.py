"""A run's images over HTTP, for the pages, the shared pages and the API alike: a stored one (its
photo's original or thumbnail, its annotated image) or one drawn for what the viewer shows (a
confidence and classes). How files are sent is `webapp/web/delivery.py`'s."""
import hashlib
from typing import Optional

from flask import current_app
from flask_limiter.util import get_remote_address
from limits import parse
from werkzeug.exceptions import TooManyRequests

from webapp.analyses import lookups, trash, viewer
from webapp.errors import NotFound
from webapp.extensions import shared_limits
from webapp.models import Photo, Run
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
    """One of a run's stored images (the annotated one drawn now if it never was); 404 for an
    unknown variant or one not made (yet)."""
    if variant == "annotated":
        path = viewer.annotated_file(run)
    elif variant == "annotated-thumbnail":
        path = viewer.annotated_thumbnail(run)
    else:
        path = lookups.stored_image(run, variant)
    name = name or f"{delivery.download_stem(run.photo.original_filename)}-{variant}{path.suffix if path else ''}"
    response = delivery.send_stored(path, name, download, missing=f"This analysis has no {variant} image (yet).")
    return delivery.attach(response, name, "attachment" if download else "inline")  # a non-Latin name whole


def send_trashed_thumbnail(photo: Photo):
    """The thumbnail of a photo in the Trash (what the Trash page shows); 404 when it has none."""
    path = trash.thumbnail_file(photo)
    name = f"{delivery.download_stem(photo.original_filename)}-thumbnail{path.suffix if path else ''}"
    return delivery.send_stored(path, name, missing="This photo has no thumbnail.")


def send_view(run: Run, args, download: bool = False, name: Optional[str] = None):
    """The annotated image drawn for the viewer's confidence and classes (`conf`, `classes` in
    `args`); drawn again only when the browser does not have it."""
    min_conf, classes = delivery.view_params(run.conf, args)
    tag = viewer.view_tag(run, min_conf, classes)
    name = name or f"{delivery.download_stem(run.photo.original_filename)}-annotated-{min_conf:.2f}.jpg"

    def view() -> bytes:
        kept = viewer.kept_view(run, tag)
        if kept is not None:
            return kept
        wait = shared_limits.wait_after_hit(parse(current_app.config["DRAWN_VIEW_RATE_LIMIT"]), "drawn-view",
                                            get_remote_address())  # views drawn now, per address
        if wait is not None:
            raise TooManyRequests(f"Too many new views of photos from this address: try again in {wait} seconds.",
                                  retry_after=wait)
        return viewer.draw_and_keep(run, min_conf, classes, tag)

    return delivery.send_drawn(tag, view, download_name=name if download else None)


def public_extension(run: Run) -> str:
    """The extension of the photo `send_shared` sends (the rendition's, or the original's)."""
    return run.photo.shown_path.rsplit(".", 1)[-1]


def send_shared(run: Run, variant: str, args, download: bool = False):
    """A run's image for someone other than its owner (a share link): the photo as its pages show
    it, with nothing but what decoding needs (no location, camera serial, names, comments, colour
    profile: `viewer.shared_copy`, kept when it had to be encoded again), or the annotated image
    (stored or drawn for the viewer's confidence and classes; neither carries metadata). Sent with an opaque ETag and no
    Last-Modified: when the photo was uploaded is not the stranger's to know."""
    if drawn(variant, args):
        return send_view(run, args, download)
    path = viewer.annotated_file(run) if variant == "annotated" else lookups.stored_image(run, "display")
    if path is None:
        raise NotFound(f"This photo has no {variant} image (yet).")
    tag = hashlib.sha256(f"shared:{variant}:{run.public_id}:{run.photo.sha256}:{run.finished_at}".encode())
    tag = tag.hexdigest()[:32]
    if variant == "original":
        return delivery.send_drawn(tag, lambda: viewer.shared_copy(run, tag), mimetype=MIMETYPES[public_extension(run)])
    return delivery.send_drawn(tag, path.read_bytes, mimetype="image/jpeg")
