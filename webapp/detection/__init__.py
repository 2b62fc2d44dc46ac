"""The app's YOLO detection: which model runs (`registry`: the configured models, one `Detector`
per process and model, the class check) and whether detection is available, said in words for
users (the gallery banner, /healthz) and for administrators (`flask check-model`) (`availability`).

The model is YOLO_MODEL when set. Otherwise it is the first model found in MODELS_DIR (default
`instance/models/`), looked up again on every use, so a model copied there is picked up without
a restart; with none there, `yolo11n.pt` is downloaded there on first use, unless YOLO_OFFLINE
is set. YOLO_MODELS names more models an upload may choose.

With `ANALYSIS_EXECUTOR=celery` the model lives in the Celery workers, not in the web processes,
which never import torch or Ultralytics: each worker process reports its model (name, class
names, or what is wrong) to a Redis hash (`webapp/jobs/reports.py`); the web tier reads those
reports (`availability`) for the banner, /healthz and the class check.
"""
