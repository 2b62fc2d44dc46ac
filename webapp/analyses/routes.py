import json
import re
from collections import Counter
from datetime import date

import sqlalchemy as sa
from flask import Response, abort, current_app, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from webapp import detection, jobs
from webapp.analyses import bp, exports, history, services
from webapp.analyses.forms import UploadForm
from webapp.errors import ProblemError, too_large_message
from webapp.extensions import db
from webapp.htmx import triggered_by, wants_partial
from webapp.models import Analysis, AnalysisStatus
from webapp.vision.draw import class_color_hex
from webapp.vision.images import NOT_AN_IMAGE

SHA256 = re.compile(r"[0-9a-fA-F]{64}")
TOP_LABELS = 8  # labels the filter bar shows as chips; the others are behind "more…"
BULK_LIMIT = 1000  # photos one bulk action may take (a zip of them is written before it is sent)
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
    labels = history.label_summary(current_user)
    offered = labels
    together = history.co_labels(current_user, filters)
    if together is not None:  # with labels chosen: what adding each other label would leave, none for 0
        offered = [item for item in labels if item[0] in filters.labels] + sorted(
            ((name, together[name]) for name, _ in labels if name not in filters.labels and together.get(name)),
            key=lambda item: (-item[1], item[0]))
    top = list(offered[:TOP_LABELS])
    top += [item for item in offered[TOP_LABELS:] if item[0] in filters.labels]  # a chosen one stays in view
    return render_template(
        "analyses/gallery.html",
        form=UploadForm(),
        labels=labels,
        top_labels=top,
        more_labels=[item for item in offered if item not in top],
        matching=history.count(current_user, filters),
        models=detection.model_names(),
        bulk_limit=BULK_LIMIT,
        filters=filters,
        filter_problem=problem,
        has_photos=current_user.photos > 0,
        unavailable=detection.availability(),
        detection_here=detection.runs_here(),
        failed_count=services.count_failed(current_user),
        too_large=too_large_message(),
        not_an_image=NOT_AN_IMAGE,
        **context,
    )


def _filters_from_request(args=None) -> tuple[history.Filters, dict, str | None]:
    """The gallery's filters from the query string (or a form): labels (all of them), from/to
    dates (YYYY-MM-DD, inclusive) and sort; the query to repeat in links; what was ignored."""
    args = request.args if args is None else args
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
    params = services.DetectionParams(model=detection.check_model(form.model.data or None))
    try:
        result = services.upload_files(current_user, files, params)
    except services.REFUSED as exc:
        status, message = services.refusal(exc)
        form.images.errors.append(message)
        return _upload_invalid(form, 413 if status == 413 else 422)
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
    """One photo. The gallery's query (labels, dates, order) comes along, so previous and next
    step through the same listing the user came from, and "All photos" goes back to it."""
    analysis = services.get_owned_analysis(current_user, public_id, with_detections=True)
    filters, query, _ = _filters_from_request()
    # the listing holds each photo once (the run it shows): another run of it steps from there
    anchor = analysis if analysis.shown else history.shown_run(analysis.photo_id) or analysis
    before, after = history.neighbours(current_user, filters, anchor)
    runs = analysis.photo.runs
    return render_template(
        "analyses/detail.html", analysis=analysis, **services.viewer(analysis), query=query, before=before,
        after=after, runs=runs,
        run_counts={r.id: Counter(d.label for d in r.visible_detections()) for r in runs if r.is_done},
        models=detection.model_names(),
    )


def run_params(data) -> services.DetectionParams:
    """A re-run's parameters from a form (conf, iou, imgsz, classes, model), checked by the API's
    own schema; ProblemError (422) says what is wrong. Empty fields are the defaults."""
    from webapp.api.analyses import detection_params
    from webapp.api.schemas import UploadParams
    from webapp.api.validation import parse

    names = ("conf", "iou", "imgsz", "classes", "model")
    fields = {k: v for k, v in ((k, data.get(k, "").strip()) for k in names) if v}
    return detection_params(parse(UploadParams, fields))


@bp.route("/analyses/<public_id>/runs", methods=["POST"])
@login_required
def rerun(public_id: str):
    """"Run again" on the detail page: a new run of the photo with these parameters."""
    analysis = services.get_owned_analysis(current_user, public_id)
    back = url_for("analyses.detail", public_id=public_id)
    try:
        result = services.rerun(analysis, run_params(request.form))
    except ProblemError as exc:
        flash(exc.detail, "error")
        return redirect(back)
    except services.REFUSED as exc:
        flash(services.refusal(exc)[1], "error")
        return redirect(back)
    new = db.session.scalar(sa.select(Analysis.public_id).where(Analysis.id == result.ids()[0]))
    if new is None:  # the photo was deleted meanwhile
        flash(services.NOT_FOUND, "error")
        return redirect(url_for("analyses.gallery"))
    flash("Running again: the new run shows here when it is done.", "success")
    return redirect(url_for("analyses.detail", public_id=new))


@bp.route("/analyses/<public_id>/delete-run", methods=["POST"])
@login_required
def delete_run(public_id: str):
    """Delete this run of a photo (not the photo); its page goes to the run the photo shows."""
    run = services.get_owned_analysis(current_user, public_id, exact=True)
    photo_id = run.photo_id
    try:
        services.delete_run(run)
    except services.OnlyRun as exc:
        flash(str(exc), "error")
        return redirect(url_for("analyses.detail", public_id=public_id))
    shown = history.shown_run(photo_id)
    flash("Run deleted.", "info")
    if shown is None:  # the photo went meanwhile
        return redirect(url_for("analyses.gallery"))
    return redirect(url_for("analyses.detail", public_id=shown.public_id))


@bp.route("/analyses/<public_id>/compare/<other_id>", methods=["GET"])
@login_required
def compare(public_id: str, other_id: str):
    """Two runs of one photo side by side, with how many boxes of each class each shows."""
    first = services.get_owned_analysis(current_user, public_id, with_detections=True)
    second = services.get_owned_analysis(current_user, other_id, with_detections=True)
    if first.photo_id != second.photo_id:
        abort(404, description="These are runs of two different photos: only runs of one photo compare.")
    first, second = sorted((first, second), key=lambda run: (run.queued_at, run.id))  # A the earlier run
    counts = [Counter(d.label for d in run.visible_detections()) for run in (first, second)]
    rows = [(label, counts[0][label], counts[1][label]) for label in sorted(set(counts[0]) | set(counts[1]))]
    return render_template("analyses/compare.html", runs=(first, second), rows=rows,
                           colors={d.label: class_color_hex(d.class_id) for r in (first, second) for d in r.detections})


@bp.route("/analyses/<public_id>/card", methods=["GET"])
@login_required
def card(public_id: str):
    """A gallery card, polled while its analysis runs; once it has ended, the page's filter bar
    is told to refresh (its labels and counts changed)."""
    analysis = services.get_owned_analysis(current_user, public_id)
    headers = {} if analysis.is_active else {"HX-Trigger": "labelsChanged"}
    return _card(analysis, _filters_from_request()[1]), 200, headers


def _card(analysis, query: dict | None = None):
    return render_template(
        "analyses/_card.html", analysis=analysis, chips=history.labels_of([analysis]), query=query or {},
    )


@bp.route("/analyses/<public_id>/image/<variant>", methods=["GET"])
@login_required
def image(public_id: str, variant: str):
    """A stored image. The annotated one with `conf` (0-1) and/or `classes` (comma-separated
    names; empty: none) is drawn for what the detail page shows: its slider and class toggles."""
    download = request.args.get("download") == "1"
    if variant == "annotated" and ("conf" in request.args or "classes" in request.args):
        analysis = services.get_owned_analysis(current_user, public_id, with_detections=True)
        min_conf, classes = services.view_params(analysis, request.args)
        return services.send_annotated_view(analysis, min_conf, classes, download=download)
    analysis = services.get_owned_analysis(current_user, public_id)
    return services.send_image(analysis, variant, download=download)


@bp.route("/analyses/<public_id>/detections.json", methods=["GET"])
@login_required
def detections_json(public_id: str):
    """Every stored detection (down to the storage floor), as the API's JSON export writes them."""
    analysis = services.get_owned_analysis(current_user, public_id, with_detections=True)
    body = exports.as_json([analysis], min_conf=0.0)["images"][0]
    return services.attach(Response(json.dumps(body, indent=2), mimetype="application/json"),
                           f"{exports.stem(analysis)}-detections.json")


@bp.route("/analyses/sha256/<digest>", methods=["GET"])
@login_required
def duplicate(digest: str):
    """Is a file with this SHA-256 already in the user's library? The upload queue asks before
    sending a photo: 200 with where it is, or 404."""
    if not SHA256.fullmatch(digest):
        abort(400, description="Not a SHA-256 digest (64 hexadecimal digits).")
    found = services.find_duplicate(current_user, digest)
    if found is None:
        return jsonify(found=False), 404
    return jsonify(found=True, id=found.public_id, filename=found.original_filename,
                   url=url_for("analyses.detail", public_id=found.public_id))


@bp.route("/analyses/bulk", methods=["POST"])
@login_required
def bulk():
    """The gallery's selection: `ids` (public ids), or `all=1` with the gallery's filter
    (labels, dates); `action` is `zip` (originals, annotated images, COCO JSON and CSV) or
    `delete`, which asks first (a page naming the count) unless `confirm=1` comes with it."""
    form = request.form
    filters, query, problem = _filters_from_request(form)
    back = url_for("analyses.gallery", **query)
    action = form.get("action")
    if action not in ("zip", "delete", "rerun"):
        flash("Choose what to do with the selected photos: run them again, download them or delete them.", "error")
        return redirect(back)
    everything, ids = form.get("all") == "1", form.getlist("ids")
    if len(ids) > BULK_LIMIT:
        chosen = []
    elif everything:
        chosen = list(db.session.scalars(history.select_all(current_user, filters).limit(BULK_LIMIT + 1)))
    else:
        chosen = services.owned_analyses(current_user, ids)
    if len(ids) > BULK_LIMIT or len(chosen) > BULK_LIMIT:
        flash(f"Select at most {BULK_LIMIT} photos at once.", "error")
        return redirect(back)
    if everything and problem:  # a filter with a part dropped would take more than was asked for
        flash(f"{problem} Nothing was done.", "error")
        return redirect(back)
    expected = form.get("total", type=int)
    if everything and expected is not None and expected != len(chosen):
        flash(f"The filter now matches {len(chosen)} photo{'' if len(chosen) == 1 else 's'}, not the {expected} "
              "you selected: nothing was done. Select them again.", "error")
        return redirect(back)
    if not chosen:
        flash("Select at least one photo first.", "error")
        return redirect(back)
    if action == "zip":
        analyses = services.owned_analyses(current_user, [a.public_id for a in chosen], with_detections=True)
        day = date.today().isoformat()
        return send_file(exports.bulk_zip(analyses), mimetype="application/zip", as_attachment=True,
                         download_name=f"spotter-{len(analyses)}-photos-{day}.zip")
    if action == "rerun":
        return _bulk_rerun(chosen, back)
    if form.get("confirm") != "1":
        return render_template("analyses/confirm_delete.html", analyses=chosen, query=query)
    deleted = services.delete_analyses(chosen)
    flash(f"Deleted {deleted} photo{'' if deleted == 1 else 's'}.", "info")
    return redirect(back)


def _bulk_rerun(chosen, back: str):
    """Run each selected photo again with the chosen model (its current run's other parameters)."""
    try:
        model = detection.check_model(request.form.get("model") or None)
    except detection.UnknownModel as exc:
        flash(str(exc), "error")
        return redirect(back)
    queued, problems = 0, []
    for analysis in chosen:
        params = services.DetectionParams(analysis.conf, analysis.iou, analysis.imgsz,
                                          tuple(analysis.classes) if analysis.classes else None, model)
        try:
            services.rerun(analysis, params)
            queued += 1
        except jobs.QueueUnavailable:
            problems.append(services.QUEUE_DOWN)
            break
        except NotFound:  # deleted meanwhile
            continue
        except services.REFUSED as exc:
            problems.append(f"{analysis.original_filename}: {services.refusal(exc)[1]}")
    if queued:
        flash(f"Running {queued} photo{'' if queued == 1 else 's'} again with {model or detection.DEFAULT_NAME}: "
              "each shows its new run once it is done.", "success")
    for problem in problems[:5]:
        flash(problem, "error")
    return redirect(back)


@bp.route("/analyses/<public_id>/delete", methods=["POST"])
@login_required
def delete(public_id: str):
    """CSRF-protected like every POST. A gallery card's htmx delete gets an empty answer (the card
    swaps itself out); the detail page's form (`detail-delete`) goes back to the gallery."""
    analysis = services.get_owned_analysis(current_user, public_id)
    name = analysis.original_filename
    services.delete_analysis(analysis)
    if wants_partial() and not triggered_by("detail-delete"):
        return "", 200, {"HX-Trigger": "labelsChanged"}
    flash(f"Deleted {name}.", "info")
    return _go_to(url_for("analyses.gallery", **_filters_from_request()[1]))  # back to the listing it was in


@bp.route("/analyses/<public_id>/retry", methods=["POST"])
@login_required
def retry(public_id: str):
    """Queue a failed analysis again. A gallery card's htmx retry gets the card back (polling);
    the detail page reloads, polling until the new run ends."""
    analysis = services.get_owned_analysis(current_user, public_id, exact=True)
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
