"""Static files with their version: every `url_for('static', ...)` carries `?v=<the file's
hash>`, so nginx (or a browser) may keep a static file an hour, and an upgrade's new script or
stylesheet is still fetched at once."""
import hashlib
from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    versions: dict[str, tuple[float, str]] = {}

    def add_version(endpoint, values) -> None:
        if endpoint != "static" or "v" in values or "filename" not in values:
            return
        path = Path(app.static_folder) / values["filename"]
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        known = versions.get(values["filename"])
        if known is None or known[0] != mtime:
            known = versions[values["filename"]] = (mtime, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
        values["v"] = known[1]

    app.url_defaults(add_version)
