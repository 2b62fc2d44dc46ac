"""A DeepStack / CodeProject.AI compatible detection endpoint (blueprint `deepstack`):
`POST /v1/vision/detection`, so Home Assistant, Blue Iris, Frigate's `deepstack` detector and the
`deepstack-python` client can use this server as it is.

Multipart `image`, optional `min_confidence` (default 0.4) and `api_key` (or the `X-API-Key` /
`Authorization: Bearer spt_…` header): an API key of either scope. The answer is synchronous:
`{"success": true, "predictions": [{"label", "confidence", "x_min", "y_min", "x_max", "y_max"}],
"duration": <ms>}` with integer pixel coordinates of the upright photo, or `{"success": false,
"error": "..."}` with a 4xx/503 status. Nothing is stored, unless the key was created with "keep
detections in my gallery": then each call is an ordinary upload (and counts towards quotas).

`routes` reads the request and answers; `detect` detects here or on a worker (`tasks`: the
Celery task a worker runs, on a queue of its own); the web process never imports torch.
"""
from flask import Blueprint

bp = Blueprint("deepstack", __name__)
