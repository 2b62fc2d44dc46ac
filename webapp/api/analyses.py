"""/api/v1/analyses: upload, list, read, re-run, retry, delete, images and exports of the
caller's runs ("analyses" in the API), and /api/v1/models."""
import threading
from typing import Optional

from flask import Response, current_app, request, url_for

from webapp.analyses import exports, listing, lookups, removal, sending, trash, uploads
from webapp.analyses.lookups import NOT_FOUND
from webapp.analyses.params import RunFields
from webapp.api import bp
from webapp.api.openapi import operation
from webapp.api.replays import idempotent, resumed_since
from webapp.api.schemas import (
    AnalysisOut, AnalysisPage, AnalysisSummary, BulkExportQuery, DeleteQuery, DetailQuery, DetectionOut, ExportQuery,
    ImageQuery, ListQuery, ModelsOut, RunsOut, UploadOut, UploadQuery,
)
from webapp.api.security import api_user, authenticated, refuse_upload, upload_signed_in
from webapp.detection.registry import DEFAULT_NAME
from webapp.detection.availability import models_info
from webapp.errors import NotFound, Refused
from webapp.models import Run
from webapp.web import delivery, limits
from webapp.web.answers import RETRY_LATER, ProblemError
from webapp.web.times import taken_iso
from webapp.web.validation import form, query

TAG = "analyses"
IMAGE_TYPES = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
               "image/png": {"schema": {"type": "string", "format": "binary"}},
               "image/webp": {"schema": {"type": "string", "format": "binary"}}}
EXPORT_TYPES = {"application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}}}


def _optional_fields(model) -> dict:
    """The model's optional form fields as plain optional properties: `anyOf [x, null]` with a
    `null` default would make Swagger UI send the text "null" for a field left empty."""
    fields = {}
    for name, prop in model.model_json_schema()["properties"].items():
        prop = dict(prop)
        choices = [c for c in prop.pop("anyOf", []) if c.get("type") != "null"]
        if len(choices) == 1:
            prop = {**choices[0], **prop}
        if prop.get("default", 0) is None:
            del prop["default"]
        if prop.get("type") == "array":
            prop["example"] = []  # not one "string" item, which would be sent as a class name
        fields[name] = prop
    return fields


def run_fields(config) -> dict:
    """The settings' form fields, each example the value the server uses when it is left out:
    what Swagger UI's "Try it out" fills in (else the schema's limits: conf=1, imgsz=32)."""
    fields = _optional_fields(RunFields)
    for name, key in (("conf", "YOLO_CONF"), ("iou", "YOLO_IOU"), ("imgsz", "YOLO_IMGSZ")):
        fields[name] = {**fields[name], "example": config[key]}
    return fields


def upload_body(config) -> dict:
    return {"schema": {
        "type": "object", "required": ["images"],
        "properties": {
            "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                       "description": "One or more photos (JPEG, PNG, WebP, BMP, TIFF, HEIC)."},
            **run_fields(config),
        },
    }, "encoding": {"images": {"contentType": "application/octet-stream"}}}


def owned(public_id: str, with_detections: bool = False, exact: bool = False) -> Run:
    """The caller's run; 404 for anyone else's, exactly as for one that does not exist."""
    return lookups.owned_run(api_user(), public_id, with_detections, exact)


def _urls(run: Run) -> dict:
    def image(variant):
        return url_for("api.image", public_id=run.public_id, variant=variant)
    return {"self": url_for("api.get_analysis", public_id=run.public_id), "original": image("original"),
            "display": image("display"),
            "annotated": image("annotated") if run.annotated_path else None,
            "thumbnail": image("thumbnail") if run.photo.thumbnail_path else None,
            "annotated_thumbnail": image("annotated-thumbnail") if run.is_done else None,
            "export": url_for("api.export_one", public_id=run.public_id, format="json")}


def summary(run: Run, labels: list[tuple[str, int]]) -> dict:
    photo = run.photo
    taken = taken_iso(photo.taken_at, photo.taken_offset)
    return {"id": run.public_id, "status": run.status, "error": run.error, "filename": photo.original_filename,
            "width": photo.width, "height": photo.height, "sha256": photo.sha256, "labels": dict(labels),
            "created_at": run.created_at, "uploaded_at": photo.created_at, "taken_at": taken,
            "finished_at": run.finished_at, "urls": _urls(run), "queued_at": run.queued_at, "shown": run.current,
            "photo": {"id": photo.public_id, "created_at": photo.created_at, "uploaded_at": photo.created_at,
                      "taken_at": taken, "taken_from": photo.taken_source, "has_location": photo.has_location,
                      "camera": ({"make": photo.camera_make, "model": photo.camera_model}
                                 if photo.camera_make or photo.camera_model else None),
                      "runs": photo.run_count}}


def detail(run: Run, min_conf: Optional[float] = None) -> dict:
    body = summary(run, sorted(run.label_counts().items()))
    body.update(
        model={"name": run.model_name, "key": run.model or DEFAULT_NAME, "conf": run.conf, "iou": run.iou,
               "imgsz": run.imgsz, "classes": run.classes},
        timings={"preprocess_ms": run.preprocess_ms, "inference_ms": run.inference_ms,
                 "postprocess_ms": run.postprocess_ms, "total_ms": run.total_ms},
        device=run.device, started_at=run.started_at,
        detections=[DetectionOut.model_validate(d.as_dict()) for d in run.detections_at(min_conf)],
    )
    return AnalysisOut.model_validate(body).model_dump(mode="json", by_alias=True)


@bp.route("/analyses", methods=["POST"])
@limits.upload(signed_in=upload_signed_in, refuse=refuse_upload)
@authenticated(detection=True)
@limits.uploads_at_once(lambda: api_user().id)
@idempotent
@operation(summary="Upload photos for detection", tag=TAG, query=UploadQuery, multipart=upload_body,
           description="202 with the queued analyses; with `wait=true`, 201 once they are finished. "
                       "Refused files are listed in `rejected` with the reason; nothing is stored for them. "
                       "An account sends at most `UPLOADS_AT_ONCE` (2) uploads at once to a server process: "
                       "another is answered 429 with `Retry-After: 1` before its body is read.",
           idempotent=True,
           responses={201: UploadOut, 202: UploadOut, 401: None, 404: None, 409: None, 413: None, 422: None,
                      429: None, 503: None})
def upload():
    wait = query(UploadQuery).wait
    params = form(RunFields).params()
    files = [f for f in request.files.getlist("images") if f and f.filename]
    if not files:
        raise ProblemError(422, "Send one or more files in the multipart field `images`.")
    result = uploads.upload_files(api_user(), [uploads.Upload(f.filename, f.stream) for f in files], params,
                                  reuse_since=resumed_since())
    rejected = [{"filename": r.filename, "reason": r.reason} for r in result.rejected]
    if not result.accepted and any(r.kind == Refused.UNAVAILABLE for r in result.rejected):
        raise ProblemError(503, uploads.QUEUE_DOWN, rejected=rejected, headers=RETRY_LATER)
    if not result.accepted:
        raise ProblemError(422, "No file was accepted.", rejected=rejected)
    return _queued(result, wait, rejected)


# Requests waiting (`?wait=true`) at once per process: more would hold every server thread while
# workers are slow or down; past this, `wait` is not honoured and the answer is 202 at once.
MAX_WAITING = 2
_waiting = threading.BoundedSemaphore(MAX_WAITING)


def _queued(result: uploads.Queued, wait: bool, rejected: list[dict]):
    """202 with the queued runs, or with `wait` (when a waiting slot is free), 201 once they are
    finished."""
    finished = False
    if wait and _waiting.acquire(blocking=False):
        try:
            finished = result.wait(current_app.config["API_WAIT_TIMEOUT"])
        finally:
            _waiting.release()
    runs = lookups.runs_by_id(api_user(), result.ids())
    if not runs:  # deleted meanwhile (by another request of the caller's)
        raise NotFound(NOT_FOUND)
    body = UploadOut.model_validate({"analyses": [detail(r) for r in runs], "rejected": rejected}) \
        .model_dump(mode="json", by_alias=True)
    headers = {"Location": body["analyses"][0]["urls"]["self"]} if len(body["analyses"]) == 1 else {}
    return body, (201 if finished else 202), headers


@bp.route("/analyses/<public_id>/retry", methods=["POST"])
@authenticated
@operation(summary="Run a failed analysis again, with the same parameters", tag=TAG, query=UploadQuery,
           description="202 with the queued analysis; with `wait=true`, 201 once it is finished. "
                       "409 when the analysis has not failed.",
           responses={201: UploadOut, 202: UploadOut, 401: None, 404: None, 409: None, 503: None})
def retry(public_id: str):
    wait = query(UploadQuery).wait
    run = owned(public_id, exact=True)
    result = uploads.retry([run])
    if result.unqueued:
        raise ProblemError(503, uploads.NOT_REQUEUED, headers=RETRY_LATER)
    if not result.accepted:
        raise ProblemError(409, f"Only a failed analysis can be retried; this one is {run.status}.")
    return _queued(result, wait, [])


@bp.route("/analyses/<public_id>/runs", methods=["POST"])
@authenticated  # not for a detect-only key: a run of a stored photo answers with what the photo is
@idempotent
@operation(summary="Run the analysis's photo again, with other settings", tag=TAG, query=UploadQuery, idempotent=True,
           multipart=lambda config: {"schema": {"type": "object", "properties": run_fields(config)}},
           description="The same parameters as an upload (conf, iou, imgsz, classes, model), without files; "
                       "the photo's other runs stay. 202 with the new run; with `wait=true`, 201 once it is "
                       "finished. The list and the gallery show the photo's latest finished run.",
           responses={201: UploadOut, 202: UploadOut, 401: None, 404: None, 409: None, 415: None, 422: None,
                      503: None})
def create_run(public_id: str):
    run = owned(public_id)
    if request.is_json:
        raise ProblemError(415, "Send the settings as form fields (multipart or urlencoded), as for an upload.")
    misplaced = sorted(set(request.args) & set(RunFields.model_fields))
    if misplaced:
        raise ProblemError(422, f"Send {', '.join(misplaced)} as form fields, not in the query string.")
    wait = query(UploadQuery).wait
    return _queued(uploads.rerun(run, form(RunFields).params(), reuse_since=resumed_since()), wait, [])


@bp.route("/analyses/<public_id>/runs", methods=["GET"])
@authenticated
@operation(summary="Every run of the analysis's photo, newest first", tag=TAG,
           responses={200: RunsOut, 401: None, 404: None})
def list_runs(public_id: str):
    runs = lookups.runs_of_photo(owned(public_id))
    return RunsOut.model_validate({"runs": [summary(r, sorted(r.label_counts().items())) for r in runs]}) \
        .model_dump(mode="json")


@bp.route("/analyses/<public_id>/runs/<run_id>", methods=["DELETE"])
@authenticated
@operation(summary="Delete one run of the photo (not the photo)", tag=TAG,
           description="Its detections and annotated image go; the photo and its other runs stay (the "
                       "gallery then shows the latest finished one). 409 for the photo's only run: "
                       "DELETE /analyses/<id> deletes the photo with every run.",
           responses={204: None, 401: None, 404: None, 409: None})
def delete_run(public_id: str, run_id: str):
    photo_id = owned(public_id).photo_id
    run = owned(run_id, exact=True)
    if run.photo_id != photo_id:
        raise ProblemError(404, "This photo has no such run.")
    removal.delete_run(run)
    return Response(status=204)


@bp.route("/analyses", methods=["GET"])
@authenticated
@operation(summary="List your analyses, newest first", tag=TAG, query=ListQuery,
           responses={200: AnalysisPage, 401: None, 422: None})
def list_analyses():
    q = query(ListQuery)
    wanted = q.filters(q.status)
    page = listing.page(api_user(), wanted, cursor=q.cursor, per_page=q.per_page, skip_pages=q.page - 1)
    chips = listing.labels_of(page.items)
    total = listing.total(api_user(), wanted)
    next_url = url_for("api.list_analyses", cursor=page.next_cursor, per_page=q.per_page, label=q.label,
                       status=q.status, sort=q.sort, by=q.by,
                       **{"from": q.from_, "to": q.to}) if page.next_cursor else None
    body = {"items": [AnalysisSummary.model_validate(summary(r, chips[r.id])) for r in page.items],
            "total": total, "page": page.number, "per_page": q.per_page,
            "pages": -(-total // q.per_page) if total is not None else None, "next": next_url}
    return AnalysisPage.model_validate(body).model_dump(mode="json")


@bp.route("/models", methods=["GET"])
@authenticated
@operation(summary="The models an upload may choose", tag=TAG, responses={200: ModelsOut, 401: None},
           description="`default` (YOLO_MODEL) first, then the YOLO_MODELS names, each with its classes: "
                       "pass a name as `model` when uploading. Where detection runs in this process, "
                       "listing a model loads it (once per process).")
def list_models():
    return ModelsOut.model_validate({"models": models_info()}).model_dump(mode="json")


@bp.route("/analyses/<public_id>", methods=["GET"])
@authenticated
@operation(summary="One analysis with its detections", tag=TAG, query=DetailQuery,
           responses={200: AnalysisOut, 401: None, 404: None, 422: None})
def get_analysis(public_id: str):
    return detail(owned(public_id, with_detections=True), query(DetailQuery).min_conf)


@bp.route("/analyses/<public_id>", methods=["DELETE"])
@authenticated
@operation(summary="Delete the analysis's photo with every run: to the Trash, or for good", tag=TAG,
           query=DeleteQuery,
           description="The photo leaves every listing and read at once (a GET of it answers 404) and waits in "
                       "the Trash TRASH_DAYS (30) days, still counted by the quota: GET /trash lists it, POST "
                       "/trash/<id>/restore brings it back. With `permanent=true` it is deleted for good now, "
                       "with its files, detections and images.",
           responses={204: None, 401: None, 404: None, 422: None})
def delete_analysis(public_id: str):
    permanent = query(DeleteQuery).permanent
    run = owned(public_id)
    if permanent:
        removal.delete_photo(run)
    else:
        trash.move_one(run)
    return Response(status=204)


@bp.route("/analyses/<public_id>/image", methods=["GET"])
@authenticated
@operation(summary="An image of the analysis", tag=TAG, query=ImageQuery,
           responses={200: IMAGE_TYPES, 401: None, 404: None, 422: None})
def image(public_id: str):
    return sending.send_image(owned(public_id), query(ImageQuery).variant)


@bp.route("/analyses/<public_id>/export", methods=["GET"])
@authenticated
@operation(summary="Export one analysis's detections", tag=TAG, query=ExportQuery,
           responses={200: EXPORT_TYPES, 401: None, 404: None, 422: None})
def export_one(public_id: str):
    q = query(ExportQuery)
    run = owned(public_id, with_detections=True)
    return delivery.send_export(exports.export([run], q.format, q.min_conf, exports.stem(run), location=q.location))


@bp.route("/analyses/export", methods=["GET"])
@authenticated
@operation(summary="Export the detections of your analyses, filtered", tag=TAG, query=BulkExportQuery,
           responses={200: EXPORT_TYPES, 401: None, 422: None})
def export_many():
    q = query(BulkExportQuery)
    user, wanted = api_user(), q.filters(q.status)
    return delivery.send_export(exports.export_all(
        lambda: listing.batches_matching(user, wanted),
        lambda: exports.classes_of(listing.stored_classes(user, wanted)),
        q.format, q.min_conf, "analyses", location=q.location))

