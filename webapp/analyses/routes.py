import json
from datetime import date

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from webapp import detection, jobs
from webapp.analyses import bp, exports, history, services
from webapp.analyses.forms import UploadForm
from webapp.errors import too_large_message
from webapp.htmx import triggered_by, wants_partial
from webapp.models import AnalysisStatus
from webapp.vision.draw import class_color_hex

STATUS_LABELS = {
    AnalysisStatus.PENDING: "Queued",
    AnalysisStatus.RUNNING: "Detecting…",
    AnalysisStatus.DONE: "Done",
    AnalysisStatus.FAILED: "Failed",
}


@bp.app_template_filter("status_label")
def status_label(status: AnalysisStatus) -> str:
    return STATUS_LABELS[status]


@bp.route("/", methods=["GET"])
def index():
    if current_user.is_authenticated:
        return redirect(url_for("analyses.gallery"))
    return render_template("home.html")


@bp.route("/analyses", methods=["GET"])
@login_required
def gallery():
    filters, query, problem = _filters_from_request()
    try:
        found = history.page(current_user, filters, cursor=request.args.get("cursor") or None,
                             per_page=current_app.config["GALLERY_PER_PAGE"], skip_pages=_skipped_pages())
    except history.BadCursor as exc:
        found, problem = history.Page(), str(exc)
    next_url = url_for("analyses.gallery", cursor=found.next_cursor, **query) if found.next_cursor else None
    context = dict(analyses=found.items, chips=history.labels_of(found.items), next_url=next_url,
                   selected=list(filters.labels), query=query)
    if wants_partial() and (request.args.get("cursor") or request.args.get("page")):
        return render_template("analyses/_cards.html", **context)
    return render_template(
        "analyses/gallery.html",
        form=UploadForm(),
        labels=history.label_summary(current_user),
        filters=filters,
        filter_problem=problem,
        has_photos=current_user.photos > 0,
        unavailable=detection.availability(),
        detection_here=detection.runs_here(),
        failed_count=services.count_failed(current_user),
        too_large=too_large_message(),
        **context,
    )


def _filters_from_request() -> tuple[history.Filters, dict, str | None]:
    """The gallery's filters from the query string: labels (all of them), from/to dates
    (YYYY-MM-DD, inclusive) and sort; the query to repeat in links; what was ignored, if any."""
    args = request.args
    asked = [name for name in args.getlist("label") if name.strip()]
    wanted = history.filters(asked, oldest_first=args.get("sort") == "oldest")
    problem = (f"Only the first {history.MAX_LABELS} labels are used." if len(set(asked)) > history.MAX_LABELS
               else None)
    query: dict = {"label": list(wanted.labels)} if wanted.labels else {}
    days = {}
    for key in ("from", "to"):
        value = args.get(key, "").strip()
        days[key] = _day(value) if value else None
        if value and days[key] is None:
            problem = f"Ignored the date {value!r}: use YYYY-MM-DD."
        elif days[key]:
            query[key] = days[key].isoformat()
    if days["from"] and days["to"] and days["from"] > days["to"]:
        problem = "The first day is after the last: no photo can match. Swap them?"
    if wanted.oldest_first:
        query["sort"] = "oldest"
    return history.filters(wanted.labels, None, days["from"], days["to"], wanted.oldest_first), query, problem


def _day(value: str) -> date | None:
    """A YYYY-MM-DD day, or None."""
    try:
        return date.fromisoformat(value) if history.DAY.fullmatch(value) else None
    except ValueError:
        return None


def _skipped_pages() -> int:
    """`?page=N`, kept for old links: at most history.MAX_PAGE pages are skipped."""
    return min(max(request.args.get("page", 1, type=int) or 1, 1), history.MAX_PAGE + 1) - 1


@bp.route("/analyses", methods=["POST"])
@login_required
def upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _upload_invalid(form)
    files = [f for f in request.files.getlist("images") if f and (f.filename or f.content_length)]
    try:
        result = services.upload_files(current_user, files)
    except jobs.QueueUnavailable:
        form.images.errors.append(services.QUEUE_DOWN)
        return _upload_invalid(form)
    except services.TooManyFiles as exc:
        form.images.errors.append(str(exc))
        return _upload_invalid(form, 413)
    if wants_partial():
        status = 201 if result.accepted else 422
        return render_template(
            "analyses/_upload_result.html", analyses=result.accepted, rejected=result.rejected,
            chips=history.labels_of(result.accepted),
        ), status
    for item in result.rejected:
        flash(f"{item.filename}: {item.reason}", "error")
    if result.accepted and detection.availability():
        flash(f"{len(result.accepted)} photo(s) uploaded, but detection is unavailable right now: "
              "they can be retried once it is back.", "info")
    elif result.accepted:
        flash(f"{len(result.accepted)} photo(s) uploaded: detection is running.", "success")
    return redirect(url_for("analyses.gallery"))


def _upload_invalid(form: UploadForm, status: int = 422):
    messages = [m for errors in form.errors.values() for m in errors]
    if wants_partial():
        refused = [services.Rejected("Upload refused", " ".join(messages))]
        return render_template("analyses/_upload_result.html", analyses=[], rejected=refused), status
    for message in messages:
        flash(message, "error")
    return redirect(url_for("analyses.gallery"))


@bp.route("/analyses/<public_id>", methods=["GET"])
@login_required
def detail(public_id: str):
    analysis = services.get_owned_analysis(current_user, public_id, with_detections=True)
    detections = [d.as_dict() for d in analysis.detections]
    labels = sorted({d.label for d in analysis.detections})
    colors = {d.label: class_color_hex(d.class_id) for d in analysis.detections}
    return render_template(
        "analyses/detail.html", analysis=analysis, detections=detections, labels=labels, colors=colors,
    )


@bp.route("/analyses/<public_id>/card", methods=["GET"])
@login_required
def card(public_id: str):
    analysis = services.get_owned_analysis(current_user, public_id)
    return _card(analysis)


def _card(analysis):
    return render_template(
        "analyses/_card.html", analysis=analysis, chips=history.labels_of([analysis]),
    )


@bp.route("/analyses/<public_id>/image/<variant>", methods=["GET"])
@login_required
def image(public_id: str, variant: str):
    analysis = services.get_owned_analysis(current_user, public_id)
    return services.send_image(analysis, variant, download=request.args.get("download") == "1")


@bp.route("/analyses/<public_id>/detections.json", methods=["GET"])
@login_required
def detections_json(public_id: str):
    """Every stored detection (down to the storage floor), as the API's JSON export writes them."""
    analysis = services.get_owned_analysis(current_user, public_id, with_detections=True)
    body = exports.as_json([analysis], min_conf=0.0)["images"][0]
    return Response(
        json.dumps(body, indent=2), mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{exports.stem(analysis)}-detections.json"'},
    )


@bp.route("/analyses/<public_id>/delete", methods=["POST"])
@login_required
def delete(public_id: str):
    """CSRF-protected like every POST. A gallery card's htmx delete gets an empty answer (the card
    swaps itself out); the detail page's form (`detail-delete`) goes back to the gallery."""
    analysis = services.get_owned_analysis(current_user, public_id)
    name = analysis.original_filename
    services.delete_analysis(analysis)
    if wants_partial() and not triggered_by("detail-delete"):
        return "", 200
    flash(f"Deleted {name}.", "info")
    return _go_to(url_for("analyses.gallery"))


@bp.route("/analyses/<public_id>/retry", methods=["POST"])
@login_required
def retry(public_id: str):
    """Queue a failed analysis again. A gallery card's htmx retry gets the card back (polling);
    the detail page reloads, polling until the new run ends."""
    analysis = services.get_owned_analysis(current_user, public_id)
    _retry([analysis])
    if wants_partial() and not triggered_by("detail-retry"):
        return _card(analysis), 200, _still_unavailable_event()
    _flash_if_still_unavailable()
    return _go_to(url_for("analyses.detail", public_id=public_id))


@bp.route("/analyses/retry-failed", methods=["POST"])
@login_required
def retry_failed():
    """Queue every failed analysis of the user again (after the model was fixed, say)."""
    result = _retry(services.failed_analyses(current_user))
    if result is None:
        pass  # the queue is down: _retry said so
    elif result.accepted:
        flash(f"Retrying {len(result.accepted)} photo(s).", "success")
        _flash_if_still_unavailable()
    else:
        flash("There is no failed photo to retry.", "info")
    return _go_to(url_for("analyses.gallery"))


def _retry(analyses) -> services.UploadResult | None:
    """services.retry, or None (after saying so) when the queue cannot be reached."""
    try:
        return services.retry(analyses)
    except jobs.QueueUnavailable:
        flash(services.NOT_REQUEUED, "error")
        return None


def _still_unavailable() -> str | None:
    problem = detection.availability()
    return f"Detection is still unavailable: {problem.reason}." if problem else None


def _flash_if_still_unavailable() -> None:
    message = _still_unavailable()
    if message:
        flash(message, "error")


def _still_unavailable_event() -> dict:
    """An htmx event (see app.js) that shows the message beside the swapped card."""
    message = _still_unavailable()
    return {"HX-Trigger": json.dumps({"showMessage": message})} if message else {}


def _go_to(url: str):
    """Redirect the browser to `url`: for htmx, as a full page load (HX-Redirect)."""
    if wants_partial():
        return "", 200, {"HX-Redirect": url}
    return redirect(url)
