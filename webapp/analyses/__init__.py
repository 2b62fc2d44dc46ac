"""Photos and their runs: the gallery, upload and detail pages (blueprint `analyses`, in
`routes`), and the services behind them and the API: `uploads` (accept, re-run, retry),
`removal` (deletes), `lookups` (a user's runs by id), `listing` (the gallery's pages and
filters), `quotas`, `viewer` (what a run's page shows), `exports`, `importing` (a library)."""
from flask import Blueprint

bp = Blueprint("analyses", __name__)
