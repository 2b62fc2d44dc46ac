import json

from flask import (
    Response, abort, current_app, flash, redirect, render_template, request, send_file, url_for,
)
from flask_login import current_user, login_required

from webapp import storage
from webapp.analyses import bp, exports, services
from webapp.analyses.forms import DeleteForm, UploadForm
from webapp.extensions import db
from webapp.models import AnalysisStatus
from webapp.pages import wants_partial
from webapp.vision.draw import class_color_hex

VARIANTS = {"original": "original_path", "annotated": "annotated_path", "thumbnail": "thumbnail_path"}


@bp.route("/", methods=["GET"])
def index():
    if current_user.is_authenticated:
        return redirect(url_for("analyses.gallery"))
    return render_template("home.html")


@bp.route("/analyses", methods=["GET"])
@login_required
def gallery():
    label = request.args.get("label", "").strip() or None
    page = request.args.get("page", 1, type=int)
    pagination = db.paginate(
        services.gallery_query(current_user, label=label),
        page=max(page, 1), per_page=current_app.config["GALLERY_PER_PAGE"], error_out=False,
    )
    analyses = list(pagination.items)
    context = dict(
        analyses=analyses,
        chips=services.label_counts(analyses),
        pagination=pagination,
        label=label,
    )
    if wants_partial() and request.args.get("page"):
        return render_template("analyses/_cards.html", **context)
    return render_template(
        "analyses/gallery.html",
        form=UploadForm(),
        labels=services.user_labels(current_user),
        **context,
    )


@bp.route("/analyses", methods=["POST"])
@login_required
def upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _upload_invalid(form)
    files = [f for f in request.files.getlist("images") if f and (f.filename or f.content_length)]
    result = services.upload_files(current_user, files)
    if wants_partial():
        status = 201 if result.accepted else 422
        return render_template(
            "analyses/_upload_result.html", analyses=result.accepted, rejected=result.rejected,
            chips=services.label_counts(result.accepted),
        ), status
    for item in result.rejected:
        flash(f"{item.filename}: {item.reason}", "error")
    if result.accepted:
        flash(f"{len(result.accepted)} photo(s) uploaded: detection is running.", "success")
    return redirect(url_for("analyses.gallery"))


def _upload_invalid(form: UploadForm):
    messages = [m for errors in form.errors.values() for m in errors]
    if wants_partial():
        return render_template("errors/_error.html", title="Upload refused",
                               message=" ".join(messages)), 422
    for message in messages:
        flash(message, "error")
    return redirect(url_for("analyses.gallery"))


@bp.route("/analyses/<public_id>", methods=["GET"])
@login_required
def detail(public_id: str):
    analysis = services.get_owned_analysis(public_id)
    detections = [d.as_dict() for d in analysis.detections]
    labels = sorted({d.label for d in analysis.detections})
    colors = {d.label: class_color_hex(d.class_id) for d in analysis.detections}
    return render_template(
        "analyses/detail.html",
        analysis=analysis, detections=detections, labels=labels, colors=colors,
        delete_form=DeleteForm(),
    )


@bp.route("/analyses/<public_id>/card", methods=["GET"])
@login_required
def card(public_id: str):
    analysis = services.get_owned_analysis(public_id)
    return render_template(
        "analyses/_card.html", analysis=analysis, chips=services.label_counts([analysis]),
    )


@bp.route("/analyses/<public_id>/image/<variant>", methods=["GET"])
@login_required
def image(public_id: str, variant: str):
    analysis = services.get_owned_analysis(public_id)
    relative = getattr(analysis, VARIANTS[variant], None) if variant in VARIANTS else None
    if not relative:
        abort(404)
    path = storage.absolute(relative)
    if not path.is_file():
        abort(404)
    download = request.args.get("download") == "1"
    name = f"{analysis.original_filename.rsplit('.', 1)[0]}-{variant}{path.suffix}"
    response = send_file(path, as_attachment=download, download_name=name,
                         conditional=True, etag=True, max_age=3600)
    response.cache_control.private = True
    response.cache_control.public = False
    return response


@bp.route("/analyses/<public_id>/detections.json", methods=["GET"])
@login_required
def detections_json(public_id: str):
    """Every stored detection (down to the storage floor), as the API's JSON export writes them."""
    analysis = services.get_owned_analysis(public_id)
    body = exports.as_json([analysis], min_conf=0.0)["images"][0]
    return Response(
        json.dumps(body, indent=2), mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{exports.stem(analysis)}-detections.json"'},
    )


@bp.route("/analyses/<public_id>/delete", methods=["POST"])
@login_required
def delete(public_id: str):
    analysis = services.get_owned_analysis(public_id)
    form = DeleteForm()
    if not form.validate_on_submit():
        abort(400)
    name = analysis.original_filename
    services.delete_analysis(analysis)
    if wants_partial():
        return "", 200  # the card swaps itself out
    flash(f"Deleted {name}.", "info")
    return redirect(url_for("analyses.gallery"))


STATUS_LABELS = {
    AnalysisStatus.PENDING: "Queued",
    AnalysisStatus.RUNNING: "Detecting…",
    AnalysisStatus.DONE: "Done",
    AnalysisStatus.FAILED: "Failed",
}


@bp.app_template_filter("status_label")
def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)
