"""/api/v1/analyses: upload, list, read, retry, delete, images and exports of the caller's analyses."""
import threading
from contextlib import contextmanager
from typing import Optional

import sqlalchemy as sa
from flask import Response, current_app, request, send_file, url_for
from sqlalchemy.orm import joinedload, selectinload

from webapp import detection, jobs
from webapp.analyses import exports, history, services
from webapp.api import bp
from webapp.api.openapi import operation
from webapp.api.schemas import (
    AnalysisOut, AnalysisPage, AnalysisSummary, BulkExportQuery, DetailQuery, DetectionOut,
    ExportQuery, ImageQuery, ListQuery, ModelsOut, RunsOut, UploadOut, UploadParams, UploadQuery,
)
from webapp.api.security import api_user, login_required
from webapp.api.validation import form, query
from webapp.errors import ProblemError
from webapp.extensions import db
from webapp.models import Analysis

TAG = "analyses"
RETRY_LATER = {"Retry-After": "30"}  # seconds, on a 503 (the model or the queue is unavailable)
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


UPLOAD_BODY = {"schema": {
    "type": "object", "required": ["images"],
    "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "description": "One or more photos (JPEG, PNG, WebP, BMP, TIFF, HEIC)."},
        **_optional_fields(UploadParams),
    },
}, "encoding": {"images": {"contentType": "application/octet-stream"}}}


def owned(public_id: str, with_detections: bool = False, exact: bool = False) -> Analysis:
    """The caller's analysis; 404 for anyone else's, exactly as for one that does not exist."""
    return services.get_owned_analysis(api_user(), public_id, with_detections, exact)


def _urls(a: Analysis) -> dict:
    def image(variant):
        return url_for("api.image", public_id=a.public_id, variant=variant)
    return {"self": url_for("api.get_analysis", public_id=a.public_id), "original": image("original"),
            "annotated": image("annotated") if a.annotated_path else None,
            "thumbnail": image("thumbnail") if a.thumbnail_path else None,
            "export": url_for("api.export_one", public_id=a.public_id, format="json")}


def summary(a: Analysis, labels: list[tuple[str, int]]) -> dict:
    photo = a.photo
    return {"id": a.public_id, "status": a.status, "error": a.error, "filename": a.original_filename,
            "width": a.width, "height": a.height, "sha256": a.sha256, "labels": dict(labels),
            "created_at": a.created_at, "finished_at": a.finished_at, "urls": _urls(a),
            "queued_at": a.queued_at, "shown": a.shown,
            "photo": {"id": photo.public_id, "created_at": photo.created_at, "runs": photo.run_count}}


def _run_labels(a: Analysis) -> list[tuple[str, int]]:
    labels: dict[str, int] = {}
    for d in a.visible_detections():
        labels[d.label] = labels.get(d.label, 0) + 1
    return sorted(labels.items())


def detail(a: Analysis, min_conf: Optional[float] = None) -> dict:
    shown = a.visible_detections(min_conf)
    body = summary(a, _run_labels(a))
    body.update(
        model={"name": a.model_name, "key": a.model or detection.DEFAULT_NAME, "conf": a.conf, "iou": a.iou,
               "imgsz": a.imgsz, "classes": a.classes},
        timings={"preprocess_ms": a.preprocess_ms, "inference_ms": a.inference_ms,
                 "postprocess_ms": a.postprocess_ms, "total_ms": a.total_ms},
        device=a.device, started_at=a.started_at,
        detections=[DetectionOut.model_validate(d.as_dict()) for d in shown],
    )
    return AnalysisOut.model_validate(body).model_dump(mode="json", by_alias=True)


def detection_params(params: UploadParams) -> services.DetectionParams:
    """An upload's or a run's parameters, its model checked (an unknown one: 422)."""
    try:
        model = detection.check_model(params.model)
    except detection.UnknownModel as exc:
        raise ProblemError(422, str(exc)) from None
    return services.DetectionParams(params.conf, params.iou, params.imgsz,
                                    tuple(params.classes) if params.classes else None, model)


@contextmanager
def refusals_as_problems():
    """What refuses an upload or a run before anything is stored, as a problem document (a 503
    says when to try again)."""
    try:
        yield
    except services.REFUSED as exc:
        status, message = services.refusal(exc)
        raise ProblemError(status, message, headers=RETRY_LATER if status == 503 else None) from None


@bp.route("/analyses", methods=["POST"])
@login_required(detection=True)
@operation(summary="Upload photos for detection", tag=TAG, query=UploadQuery, multipart=UPLOAD_BODY,
           description="202 with the queued analyses; with `wait=true`, 201 once they are finished. "
                       "Refused files are listed in `rejected` with the reason; nothing is stored for them.",
           responses={201: UploadOut, 202: UploadOut, 401: None, 404: None, 413: None, 422: None, 503: None})
def upload():
    wait = query(UploadQuery).wait
    params = form(UploadParams)
    files = [f for f in request.files.getlist("images") if f and f.filename]
    if not files:
        raise ProblemError(422, "Send one or more files in the multipart field `images`.")
    wanted = detection_params(params)
    with refusals_as_problems():
        result = services.upload_files(api_user(), files, wanted)
    rejected = [{"filename": r.filename, "reason": r.reason} for r in result.rejected]
    if not result.accepted and any(r.reason == services.QUEUE_DOWN for r in result.rejected):
        raise ProblemError(503, services.QUEUE_DOWN, rejected=rejected, headers=RETRY_LATER)
    if not result.accepted:
        raise ProblemError(422, "No file was accepted.", rejected=rejected)
    return _queued(result, wait, rejected)


# Requests waiting (`?wait=true`) at once per process: more would hold every server thread while
# workers are slow or down; past this, `wait` is not honoured and the answer is 202 at once.
MAX_WAITING = 2
_waiting = threading.BoundedSemaphore(MAX_WAITING)


def _queued(result: services.UploadResult, wait: bool, rejected: list[dict]):
    """202 with the queued analyses, or with `wait` (when a waiting slot is free), 201 once they
    are finished."""
    finished = False
    if wait and _waiting.acquire(blocking=False):
        try:
            finished = result.wait(current_app.config["API_WAIT_TIMEOUT"])
        finally:
            _waiting.release()
    ids = result.ids()
    db.session.expire_all()
    found = {a.id: a for a in db.session.scalars(sa.select(Analysis).where(
        Analysis.id.in_(ids), Analysis.user_id == api_user().id).options(
        joinedload(Analysis.photo, innerjoin=True), selectinload(Analysis.detections)))}
    if not found:  # deleted meanwhile (by another request of the caller's)
        raise ProblemError(404, services.NOT_FOUND)
    body = UploadOut.model_validate({
        "analyses": [detail(found[i]) for i in ids if i in found],
        "rejected": rejected,
    }).model_dump(mode="json", by_alias=True)
    headers = {"Location": body["analyses"][0]["urls"]["self"]} if len(body["analyses"]) == 1 else {}
    return body, (201 if finished else 202), headers


@bp.route("/analyses/<public_id>/retry", methods=["POST"])
@login_required
@operation(summary="Run a failed analysis again, with the same parameters", tag=TAG, query=UploadQuery,
           description="202 with the queued analysis; with `wait=true`, 201 once it is finished. "
                       "409 when the analysis has not failed.",
           responses={201: UploadOut, 202: UploadOut, 401: None, 404: None, 409: None, 503: None})
def retry(public_id: str):
    wait = query(UploadQuery).wait
    analysis = owned(public_id, exact=True)
    try:
        result = services.retry([analysis])
    except jobs.QueueUnavailable:
        raise ProblemError(503, services.NOT_REQUEUED, headers=RETRY_LATER) from None
    if not result.accepted and analysis.is_failed and analysis.error == services.NOT_REQUEUED:
        raise ProblemError(503, services.NOT_REQUEUED, headers=RETRY_LATER)
    if not result.accepted:
        raise ProblemError(409, f"Only a failed analysis can be retried; this one is {analysis.status}.")
    return _queued(result, wait, [])


@bp.route("/analyses/<public_id>/runs", methods=["POST"])
@login_required(detection=True)
@operation(summary="Run the analysis's photo again, with other settings", tag=TAG, query=UploadQuery,
           multipart={"schema": {"type": "object", "properties": _optional_fields(UploadParams)}},
           description="The same parameters as an upload (conf, iou, imgsz, classes, model), without files; "
                       "the photo's other runs stay. 202 with the new run; with `wait=true`, 201 once it is "
                       "finished. The list and the gallery show the photo's latest finished run.",
           responses={201: UploadOut, 202: UploadOut, 401: None, 404: None, 409: None, 415: None, 422: None,
                      503: None})
def create_run(public_id: str):
    analysis = owned(public_id)
    if request.is_json:
        raise ProblemError(415, "Send the settings as form fields (multipart or urlencoded), as for an upload.")
    misplaced = sorted(set(request.args) & set(UploadParams.model_fields))
    if misplaced:
        raise ProblemError(422, f"Send {', '.join(misplaced)} as form fields, not in the query string.")
    wait = query(UploadQuery).wait
    params = form(UploadParams)
    wanted = detection_params(params)
    with refusals_as_problems():
        result = services.rerun(analysis, wanted)
    return _queued(result, wait, [])


@bp.route("/analyses/<public_id>/runs", methods=["GET"])
@login_required
@operation(summary="Every run of the analysis's photo, newest first", tag=TAG,
           responses={200: RunsOut, 401: None, 404: None})
def list_runs(public_id: str):
    photo = owned(public_id).photo
    runs = list(db.session.scalars(sa.select(Analysis).where(Analysis.photo_id == photo.id)
                                   .options(selectinload(Analysis.detections))
                                   .order_by(Analysis.queued_at.desc(), Analysis.id.desc())))
    return RunsOut.model_validate({"runs": [summary(r, _run_labels(r)) for r in runs]}).model_dump(mode="json")


@bp.route("/analyses/<public_id>/runs/<run_id>", methods=["DELETE"])
@login_required
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
    try:
        services.delete_run(run)
    except services.OnlyRun as exc:
        raise ProblemError(409, str(exc)) from None
    return Response(status=204)


@bp.route("/analyses", methods=["GET"])
@login_required
@operation(summary="List your analyses, newest first", tag=TAG, query=ListQuery,
           responses={200: AnalysisPage, 401: None, 422: None})
def list_analyses():
    q = query(ListQuery)
    wanted = _filters(q, q.status)
    try:
        found = history.page(api_user(), wanted, cursor=q.cursor, per_page=q.per_page, skip_pages=q.page - 1)
    except history.BadCursor as exc:
        raise ProblemError(422, str(exc)) from None
    chips = history.labels_of(found.items)
    total = history.total(api_user(), wanted)
    next_url = url_for("api.list_analyses", cursor=found.next_cursor, per_page=q.per_page, label=q.label,
                       status=q.status, sort=q.sort, **{"from": q.from_, "to": q.to}) if found.next_cursor else None
    body = {"items": [AnalysisSummary.model_validate(summary(a, chips[a.id])) for a in found.items],
            "total": total, "page": found.number, "per_page": q.per_page,
            "pages": -(-total // q.per_page) if total is not None else None, "next": next_url}
    return AnalysisPage.model_validate(body).model_dump(mode="json")


@bp.route("/models", methods=["GET"])
@login_required
@operation(summary="The models an upload may choose", tag=TAG, responses={200: ModelsOut, 401: None},
           description="`default` (YOLO_MODEL) first, then the YOLO_MODELS names, each with its classes: "
                       "pass a name as `model` when uploading. Where detection runs in this process, "
                       "listing a model loads it (once per process).")
def list_models():
    return ModelsOut.model_validate({"models": models_info()}).model_dump(mode="json")


def models_info() -> list[dict]:
    """Each configured model: its name, file name, whether it can be used and its classes."""
    found = []
    for name in detection.model_names():
        key = None if name == detection.DEFAULT_NAME else name
        info = {"name": name, "model": detection.expected_model_name(model=key),
                "default": key is None, "available": True, "reason": None, "classes": None}
        try:
            classes = detection.class_names(model=key)
            info["classes"] = {str(k): v for k, v in classes.items()} or None
        except detection.NotAvailable as exc:
            info.update(available=False, reason=exc.unavailable.reason)
        found.append(info)
    return found


def _filters(q, status) -> history.Filters:
    return history.filters(q.label or (), status, q.from_, q.to, oldest_first=q.sort == "oldest")


@bp.route("/analyses/<public_id>", methods=["GET"])
@login_required
@operation(summary="One analysis with its detections", tag=TAG, query=DetailQuery,
           responses={200: AnalysisOut, 401: None, 404: None, 422: None})
def get_analysis(public_id: str):
    return detail(owned(public_id, with_detections=True), query(DetailQuery).min_conf)


@bp.route("/analyses/<public_id>", methods=["DELETE"])
@login_required
@operation(summary="Delete the analysis's photo with every run, their detections and images", tag=TAG,
           responses={204: None, 401: None, 404: None})
def delete_analysis(public_id: str):
    services.delete_analysis(owned(public_id))
    return Response(status=204)


@bp.route("/analyses/<public_id>/image", methods=["GET"])
@login_required
@operation(summary="An image of the analysis", tag=TAG, query=ImageQuery,
           responses={200: IMAGE_TYPES, 401: None, 404: None, 422: None})
def image(public_id: str):
    analysis = owned(public_id)
    return services.send_image(analysis, query(ImageQuery).variant)


@bp.route("/analyses/<public_id>/export", methods=["GET"])
@login_required
@operation(summary="Export one analysis's detections", tag=TAG, query=ExportQuery,
           responses={200: EXPORT_TYPES, 401: None, 404: None, 422: None})
def export_one(public_id: str):
    q = query(ExportQuery)
    analysis = owned(public_id, with_detections=True)
    return _send(exports.export([analysis], q.format, q.min_conf, exports.stem(analysis)))


@bp.route("/analyses/export", methods=["GET"])
@login_required
@operation(summary="Export the detections of your analyses, filtered", tag=TAG, query=BulkExportQuery,
           responses={200: EXPORT_TYPES, 401: None, 422: None})
def export_many():
    q = query(BulkExportQuery)
    stmt = history.select_all(api_user(), _filters(q, q.status))
    analyses = list(db.session.scalars(stmt.options(selectinload(Analysis.detections))))
    return _send(exports.export(analyses, q.format, q.min_conf, "analyses", dataset=True))


def _send(result: exports.Export) -> Response:
    if not isinstance(result.body, bytes):  # a temporary file, streamed and closed
        return send_file(result.body, mimetype=result.mimetype, as_attachment=True, download_name=result.filename)
    return services.attach(Response(result.body, mimetype=result.mimetype), result.filename)
