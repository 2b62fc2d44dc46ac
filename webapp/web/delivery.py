"""Sending files: a stored image or a drawn view, `private, no-cache` with an ETag (a browser
keeps it but asks again each time: a 304 while it is unchanged, a 404 once it is deleted, the
log-in page after logging out; no shared cache ever keeps it), and named for a download with
`Content-Disposition` (an ASCII name, plus the exact one as `filename*`)."""
import unicodedata
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from flask import Response, abort, request, send_file


def private(response: Response) -> Response:
    """`private, no-cache`: a browser keeps it but asks again each time; no shared cache keeps it."""
    response.cache_control.public = False
    response.cache_control.max_age = None
    response.cache_control.private = True
    response.cache_control.no_cache = True
    return response


def send_stored(path: Optional[Path], download_name: str, download: bool = False,
                missing: str = "This image does not exist (yet).") -> Response:
    """A stored file, conditional (ETag, 304), private; 404 (saying `missing`) when it is not there."""
    if path is None or not path.is_file():
        abort(404, description=missing)
    return private(send_file(path, as_attachment=download, download_name=download_name,
                             conditional=True, etag=True, max_age=None))


def send_drawn(tag: str, draw, mimetype: str = "image/jpeg", download_name: Optional[str] = None) -> Response:
    """An image drawn on request (`draw()` makes its bytes), tagged `tag`: a 304 without drawing
    it when the browser has it already."""
    if tag in request.if_none_match:
        return private(Response(status=304, headers={"ETag": f'"{tag}"'}))
    response = Response(draw(), mimetype=mimetype)
    response.set_etag(tag)
    if download_name:
        attach(response, download_name)
    return private(response)


def download_stem(filename: str, max_bytes: int = 80) -> str:
    """How a photo's downloads are named: its name without the extension, cut to `max_bytes` of
    UTF-8 (at a character); "photo" when it has no letter or digit."""
    stem = filename.rsplit(".", 1)[0].encode()[:max_bytes].decode(errors="ignore")
    return stem if any(ch.isalnum() for ch in stem) else "photo"


def attach(response: Response, name: str, disposition: str = "attachment") -> Response:
    """`Content-Disposition` with this file name, as send_file writes it: an ASCII name, plus the
    exact one as `filename*` (RFC 5987) when it is not ASCII (a header must be Latin-1, and
    browsers read UTF-8 only from `filename*`)."""
    try:
        name.encode("ascii")
        names = {"filename": name}
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        if not simple[:1].isalnum():  # nothing of the name was left, or only its tail ("-1a2b3c4d.json")
            simple = "download" + simple
        names = {"filename": simple, "filename*": f"UTF-8''{quote(name, safe='')}"}
    response.headers.set("Content-Disposition", disposition, **names)
    return response


def view_params(default_conf: float, args) -> tuple[float, Optional[frozenset[str]]]:
    """`conf` (0-1) and `classes` (comma-separated names; empty: none) of a drawn view, from a
    query; 400 when they are not what the page sends."""
    raw = args.get("conf")
    try:
        min_conf = default_conf if raw is None else float(raw)
    except ValueError:
        min_conf = -1.0
    if not 0.0 <= min_conf <= 1.0:  # NaN fails too
        abort(400, description="`conf` must be a number from 0 to 1.")
    names = args.get("classes")
    if names is not None and len(names) > 4000:
        abort(400, description="`classes` is too long.")
    return min_conf, (None if names is None else frozenset(n.strip() for n in names.split(",") if n.strip()))


def send_export(export) -> Response:
    """An export (`analyses.exports.Export`) as a download: bytes, or a temporary file streamed and closed."""
    if not isinstance(export.body, bytes):
        return send_file(export.body, mimetype=export.mimetype, as_attachment=True, download_name=export.filename)
    return attach(Response(export.body, mimetype=export.mimetype), export.filename)
