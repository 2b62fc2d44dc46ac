"""The pages: the gallery (with the upload form), a photo's page (its runs, Run again, sharing),
two runs compared, and the actions on them (delete, retry, bulk). Services do the work and
raise; a NotFound is a 404 page, a refusal a message here."""
import json
import re
from datetime import date

from flask import (Response, abort, current_app, flash, jsonify, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_login import current_user, login_required

from webapp.analyses import bp, events, exports, listing, lookups, removal, sending, trash, uploads, viewer
from webapp.analyses.forms import UploadForm
from webapp.analyses.params import DetectionParams, RunFields
from webapp.detection.registry import DEFAULT_NAME, model_key, model_names, runs_here
from webapp.detection.availability import availability, models_info
from webapp.errors import NotFound, Refused
from webapp.library.current_run import current_run
from webapp.models import RunStatus
from webapp.web import delivery, limits
from webapp.web.answers import ProblemError, status_of
from webapp.web.htmx import triggered_by, wants_partial
from webapp.web.validation import parse
from webapp.vision.images import DECODING_FOUND, NOT_AN_IMAGE

SHA256 = re.compile(r"[0-9a-fA-F]{64}")
LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\]*")  # a path of this site: never //host, /\host or a hidden space
BULK_LIMIT = 1000  # photos one bulk action may take (a zip of them is written before it is sent)
TRASH_SHOWN = 1000  # photos the Trash page shows (the newest deleted); the rest are still there
STATUS_LABELS = {
    RunStatus.PENDING: "Queued",
    RunStatus.RUNNING: "Detecting…",
    RunStatus.DONE: "Done",
    RunStatus.FAILED: "Failed",
}


@bp.app_template_filter("status_label")
def status_label(status: RunStatus) -> str:
    return STATUS_LABELS[status]


@bp.app_template_test("unreadable")
def unreadable(run) -> bool:
    """A run failed by what only decoding its photo finds (a damaged file)."""
    return run.is_failed and run.error in DECODING_FOUND


@bp.app_template_filter("camera")
def camera(photo) -> str:
    """"Apple iPhone 15": the make, then the model unless it already names the make ("Canon EOS
    5D", "NIKON D850" for NIKON CORPORATION)."""
    make, model = photo.camera_make or "", photo.camera_model or ""
    brand = make.split()[0].lower() if make.split() else ""
    return model if brand and model.lower().startswith(brand) else f"{make} {model}".strip()


@bp.route("/", methods=["GET"])
def index():
    if current_user.is_authenticated:
        return redirect(url_for("analyses.gallery"))
    return render_template("home.html")


@bp.route("/analyses", methods=["GET"])
@login_required
def gallery():
    found, query, problem = listing.read_filters(request.args)
    typed = request.args.get("find", "").strip()
    if typed:  # the filter bar's "Find a label": Enter takes the first match
        label = listing.first_label_like(current_user, typed)
        if label:
            return redirect(url_for("analyses.gallery", **dict(query, label=query.get("label", []) + [label])))
        problem = f"No label matches “{typed[:100]}”."
    cursor = request.args.get("cursor") or None
    try:
        page = listing.page(current_user, found, cursor=cursor,
                            per_page=current_app.config["GALLERY_PER_PAGE"], skip_pages=_skipped_pages())
    except listing.BadCursor as exc:
        if wants_partial():  # the scroll's own request: nothing more to add
            page, problem = listing.Page(), str(exc)
        else:  # a link to a place in the photos that no longer works (another order, account or key): the top
            page, cursor = listing.page(current_user, found, per_page=current_app.config["GALLERY_PER_PAGE"]), None
            flash("That link to a place in your photos no longer works: here are the newest.", "info")
    next_url = url_for("analyses.gallery", cursor=page.next_cursor, **query) if page.next_cursor else None
    context = dict(runs=page.items, chips=listing.labels_of(page.items), next_url=next_url, after=page.after,
                   selected=list(found.labels), query=query)
    if wants_partial() and (request.args.get("cursor") or request.args.get("page")):
        return render_template("analyses/_cards.html", **context)
    jumped = listing.sort_date(page.items[0], found) if cursor and page.items else None
    return render_template(
        "analyses/gallery.html", form=UploadForm(), bar=listing.filter_bar(current_user, found, count_up_to=BULK_LIMIT),
        years=listing.years(current_user, found), jumped=jumped,
        models=model_names(), bulk_limit=BULK_LIMIT, filters=found, filter_problem=problem,
        has_photos=current_user.photos > current_user.trashed, unavailable=availability(), detection_here=runs_here(),
        failed_count=lookups.count_failed(current_user), too_large=limits.too_large_message(),
        not_an_image=NOT_AN_IMAGE, **context,
    )


def _skipped_pages() -> int:
    """`?page=N`, kept for old links: at most listing.MAX_PAGE pages are skipped."""
    return min(max(request.args.get("page", 1, type=int) or 1, 1), listing.MAX_PAGE + 1) - 1


@bp.route("/analyses", methods=["POST"])
@limits.upload(back_to="analyses.gallery")
@login_required
@limits.uploads_at_once(lambda: current_user.id)
def upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _upload_invalid(form)
    files = [f for f in request.files.getlist("images") if f and (f.filename or f.content_length)]
    params = DetectionParams(model=model_key(form.model.data or None))
    try:
        result = uploads.upload_files(current_user, [uploads.Upload(f.filename, f.stream) for f in files], params)
    except uploads.REFUSED as exc:
        form.images.errors.append(str(exc))
        return _upload_invalid(form, 413 if status_of(exc) == 413 else 422)
    if wants_partial():
        return render_template("analyses/_upload_result.html", runs=result.accepted, rejected=result.rejected,
                               chips=listing.labels_of(result.accepted)), 201 if result.accepted else 422
    for item in result.rejected:
        flash(f"{item.filename}: {item.reason}", "error")
    if result.accepted and availability():
        flash(f"{len(result.accepted)} photo(s) uploaded, but detection is unavailable right now: "
              "they can be retried once it is back.", "info")
    elif result.accepted:
        flash(f"{len(result.accepted)} photo(s) uploaded: detection is running.", "success")
    return redirect(url_for("analyses.gallery"))


def _upload_invalid(form: UploadForm, status: int = 422):
    messages = [m for errors in form.errors.values() for m in errors]
    if wants_partial():
        refused = [uploads.Rejected("Upload refused", " ".join(messages))]
        return render_template("analyses/_upload_result.html", runs=[], rejected=refused), status
    for message in messages:
        flash(message, "error")
    return redirect(url_for("analyses.gallery"))


@bp.route("/analyses/<public_id>", methods=["GET"])
@login_required
def detail(public_id: str):
    """One run of a photo. The gallery's query (labels, dates, order) comes along, so previous
    and next step through the same listing the user came from, and "All photos" goes back to it."""
    return _detail_page(public_id)


def _detail_page(public_id: str, rerun: dict | None = None, rerun_error: str | None = None) -> str:
    """A run's page; with `rerun` (the Run again form's fields as sent) and its `rerun_error`,
    that form is shown open, as it was filled in, with the error."""
    run = lookups.owned_run(current_user, public_id, with_detections=True)
    found, query, _ = listing.read_filters(request.args)
    # the listing holds each photo once (its current run): another run of it steps from there
    anchor = run if run.current else current_run(run.photo_id) or run
    before, after = listing.neighbours(current_user, found, anchor)
    # back to the gallery where this photo is, however deep: a page starting a few photos before it
    back = listing.back_cursor(current_user, found, anchor) if anchor.current else None
    runs = run.photo.runs
    return render_template(
        "analyses/detail.html", run=run, **viewer.viewer(run), query=query, before=before, after=after, runs=runs,
        back_url=url_for("analyses.gallery", **(dict(query, cursor=back) if back else query)),
        run_counts={r.id: r.label_counts() for r in runs if r.is_done}, models=model_names(),
        model_classes=_model_classes(), rerun=rerun, rerun_error=rerun_error,
    )


def _model_classes() -> dict[str, list[str]]:
    """{model name: its class names} for the Run again form's class picker (a model that cannot
    be loaded now offers none: the form still takes names)."""
    return {info["name"]: list((info["classes"] or {}).values()) for info in models_info()}


@bp.route("/analyses/<public_id>/runs", methods=["POST"])
@login_required
def rerun(public_id: str):
    """"Run again" on the detail page: a new run of the photo with these settings (checked as
    the API checks them)."""
    run = lookups.owned_run(current_user, public_id)
    names = ("conf", "iou", "imgsz", "classes", "model")
    fields = {k: v for k, v in ((k, request.form.get(k, "").strip()) for k in names) if v}
    try:
        result = uploads.rerun(run, parse(RunFields, fields).params())
    except (ProblemError, Refused) as exc:  # a bad field, or settings the model refuses: the form again, as sent
        status = exc.status if isinstance(exc, ProblemError) else status_of(exc)
        return _detail_page(public_id, rerun={k: request.form.get(k, "") for k in names}, rerun_error=str(exc)), status
    new = lookups.public_id_of(result.ids()[0])
    if new is None:  # the photo was deleted meanwhile
        flash(lookups.NOT_FOUND, "error")
        return redirect(url_for("analyses.gallery"))
    flash("Running again: the new run shows here when it is done.", "success")
    return redirect(url_for("analyses.detail", public_id=new))


@bp.route("/analyses/<public_id>/delete-run", methods=["POST"])
@login_required
def delete_run(public_id: str):
    """Delete this run of a photo (not the photo); its page goes to the photo's current run."""
    run = lookups.owned_run(current_user, public_id, exact=True)
    photo_id = run.photo_id
    try:
        removal.delete_run(run)
    except removal.OnlyRun as exc:
        flash(str(exc), "error")
        return _go_to(url_for("analyses.detail", public_id=public_id))
    current = current_run(photo_id)
    flash("Run deleted.", "info")
    if current is None:  # the photo went meanwhile
        return _go_to(url_for("analyses.gallery"))
    return _go_to(url_for("analyses.detail", public_id=current.public_id))


@bp.route("/analyses/<public_id>/compare/<other_id>", methods=["GET"])
@login_required
def compare(public_id: str, other_id: str):
    """Two runs of one photo side by side, with how many boxes of each class each shows."""
    first = lookups.owned_run(current_user, public_id, with_detections=True)
    second = lookups.owned_run(current_user, other_id, with_detections=True)
    if first.photo_id != second.photo_id:
        abort(404, description="These are runs of two different photos: only runs of one photo compare.")
    first, second = sorted((first, second), key=lambda run: (run.queued_at, run.id))  # A the earlier run
    return render_template("analyses/compare.html", runs=(first, second), rows=viewer.compare(first, second),
                           colors=viewer.colors(first, second))


@bp.route("/analyses/<public_id>/card", methods=["GET"])
@login_required
def card(public_id: str):
    """A gallery card, polled while its run is going; once it has ended, the page's filter bar
    is told to refresh (its labels and counts changed)."""
    run = lookups.owned_run(current_user, public_id)
    headers = {} if run.is_active else {"HX-Trigger": "labelsChanged"}
    return _card(run, listing.read_filters(request.args)[1]), 200, headers


def _card(run, query: dict | None = None, message: str | None = None):
    """A gallery card; `message` shown in the page's message area too (an out-of-band swap). A
    run that failed while detection is unavailable brings the gallery's banner with it (why, and
    the fix), so it shows without a reload."""
    banner = availability() if run.is_failed else None
    return render_template("analyses/_card.html", run=run, chips=listing.labels_of([run]), query=query or {},
                           message=message, card_banner=banner, detection_here=runs_here())


@bp.route("/events", methods=["GET"])
@login_required
def event_stream():
    """The tab's event stream (Server-Sent Events): `finished` with a run's id and status the
    moment it ends, for the runs the tab shows as going (`watch`: their ids, comma-separated) and
    any other of the account's; `idle` when there is nothing left to wait for (it then ends)."""
    if request.method == "HEAD":  # no stream (one never iterated would keep its place)
        return Response(mimetype="text/event-stream", headers={"Cache-Control": "no-store"})
    stream = events.open_stream(current_user.id, events.parse_watched(request.args.get("watch")))
    return Response(stream_with_context(stream), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.route("/analyses/<public_id>/image/<variant>", methods=["GET"])
@login_required
def image(public_id: str, variant: str):
    """A stored image. The annotated one with `conf` (0-1) and/or `classes` (comma-separated
    names; empty: none) is drawn for what the detail page shows: its slider and class toggles."""
    run = lookups.owned_run(current_user, public_id, with_detections=sending.drawn(variant, request.args))
    return sending.send_run_image(run, variant, request.args, download=request.args.get("download") == "1")


@bp.route("/analyses/<public_id>/detections.json", methods=["GET"])
@login_required
def detections_json(public_id: str):
    """Every stored detection (down to the storage floor), as the API's JSON export writes them."""
    run = lookups.owned_run(current_user, public_id, with_detections=True)
    body = exports.as_json([run], min_conf=0.0)["images"][0]
    return delivery.send_export(exports.Export(json.dumps(body, indent=2).encode(), "application/json",
                                               f"{exports.stem(run)}-detections.json"))


@bp.route("/analyses/sha256/<digest>", methods=["GET"])
@login_required
def duplicate(digest: str):
    """Is a file with this SHA-256 already in the user's library? 200 with where it is, or 404;
    for the upload queue (htmx), which asks before sending a photo, its question as a tile (the
    file's `name` in the query), or 204 to go ahead."""
    if not SHA256.fullmatch(digest):
        abort(400, description="Not a SHA-256 digest (64 hexadecimal digits).")
    found = lookups.find_duplicate(current_user, digest)
    if wants_partial():  # the upload queue: its question as a tile, or nothing to ask
        trashed = trash.trashed_with_bytes(current_user, digest) if found is None else None
        if found is None and trashed is None:
            return "", 204
        return render_template("analyses/_duplicate.html", found=found, trashed=trashed,
                               name=request.args.get("name", ""))
    if found is None:
        return jsonify(found=False), 404
    return jsonify(found=True, id=found.public_id, filename=found.photo.original_filename,
                   url=url_for("analyses.detail", public_id=found.public_id))


@bp.route("/analyses/bulk", methods=["POST"])
@login_required
def bulk():
    """The gallery's selection: `ids` (public ids), or `all=1` with the gallery's filter
    (labels, dates); `action` is `zip` (originals, annotated images, COCO JSON and CSV), `rerun`
    or `delete`, which asks first (a page naming the count) unless `confirm=1` comes with it."""
    form = request.form
    found, query, problem = listing.read_filters(form)
    back = url_for("analyses.gallery", **query)
    action = form.get("action")
    if action not in ("zip", "delete", "rerun"):
        flash("Choose what to do with the selected photos: run them again, download them or delete them.", "error")
        return redirect(back)
    chosen, refusal = _chosen(form, found, problem)
    if refusal:
        flash(refusal, "error")
        return redirect(back)
    if action == "zip":
        runs = lookups.owned_runs(current_user, [r.public_id for r in chosen], with_detections=True)
        return delivery.send_export(exports.Export(exports.bulk_zip(runs), "application/zip",
                                                   f"spotter-{len(runs)}-photos-{date.today().isoformat()}.zip"))
    if action == "rerun":
        return _bulk_rerun(chosen, back)
    if form.get("confirm") != "1":
        return render_template("analyses/confirm_delete.html", runs=chosen, query=query, trash_days=_trash_days())
    _flash_moved(trash.move_to_trash(chosen), back)
    return _go_to(back)


def _chosen(form, found: listing.Filters, problem):
    """The photos a bulk action takes (their current runs), or why it takes none."""
    everything, ids = form.get("all") == "1", form.getlist("ids")
    if len(ids) > BULK_LIMIT:
        return [], f"Select at most {BULK_LIMIT} photos at once."
    if everything:
        chosen = listing.all_matching(current_user, found, limit=BULK_LIMIT + 1)
    else:
        chosen = lookups.owned_runs(current_user, ids)
    if len(chosen) > BULK_LIMIT:
        return [], f"Select at most {BULK_LIMIT} photos at once."
    if everything and problem:  # a filter with a part dropped would take more than was asked for
        return [], f"{problem} Nothing was done."
    expected = form.get("total", type=int)
    if everything and expected is not None and expected != len(chosen):
        return [], (f"The filter now matches {len(chosen)} photo{'' if len(chosen) == 1 else 's'}, not the "
                    f"{expected} you selected: nothing was done. Select them again.")
    if not chosen:
        return [], "Select at least one photo first."
    return chosen, None


def _bulk_rerun(chosen, back: str):
    """Run each selected photo again with the chosen model (its current run's other settings)."""
    try:
        model = model_key(request.form.get("model") or None)
    except Refused as exc:
        flash(str(exc), "error")
        return redirect(back)
    queued, problems = 0, []
    for run in chosen:
        params = DetectionParams(run.conf, run.iou, run.imgsz, tuple(run.classes) if run.classes else None, model)
        try:
            uploads.rerun(run, params)
            queued += 1
        except NotFound:  # deleted meanwhile
            continue
        except uploads.QueueUnavailable:
            problems.append(uploads.QUEUE_DOWN)
            break
        except uploads.REFUSED as exc:
            problems.append(f"{run.photo.original_filename}: {exc}")
    if queued:
        flash(f"Running {queued} photo{'' if queued == 1 else 's'} again with {model or DEFAULT_NAME}: "
              "each shows its new run once it is done.", "success")
    for problem in problems[:5]:
        flash(problem, "error")
    return redirect(back)


@bp.route("/analyses/<public_id>/delete", methods=["POST"])
@login_required
def delete(public_id: str):
    """Move the photo to the Trash (CSRF-protected like every POST), saying so with an Undo. A
    gallery card's htmx delete gets the message alone (the card swaps itself out); the detail
    page's form (`detail-delete`) goes on to the next photo of its listing (else the previous,
    else the listing)."""
    run = lookups.owned_run(current_user, public_id)
    found, query, _ = listing.read_filters(request.args)
    gallery_url = url_for("analyses.gallery", **query)
    if wants_partial() and not triggered_by("detail-delete"):
        undo = _undo(trash.move_one(run), gallery_url)
        return render_template("analyses/_undo.html", undo=undo, oob=True), 200, {"HX-Trigger": "labelsChanged"}
    anchor = run if run.current else current_run(run.photo_id) or run
    before, after = listing.neighbours(current_user, found, anchor)
    moved = trash.move_one(run)
    following = after or before
    _flash_moved(moved, url_for("analyses.detail", public_id=public_id, **query))  # its Undo: back to this photo
    return _go_to(url_for("analyses.detail", public_id=following.public_id, **query) if following else gallery_url)


def _flash_moved(moved: trash.Moved, back: str) -> None:
    """"Moved … to the Trash" with its Undo, which comes back to `back`."""
    if moved.count:
        flash(_undo(moved, back), "undo")
    else:
        flash("Nothing was deleted: those photos were already gone.", "info")


def _undo(moved: trash.Moved, back: str) -> dict:
    """What _undo.html shows: the message, the batch its Undo restores, and where it comes back to."""
    text = f"Moved {moved.name} to the Trash." if moved.count == 1 else f"Moved {moved.count} photos to the Trash."
    return {"text": text, "batch": moved.batch, "back": back}


def _trash_days() -> int:
    return current_app.config["TRASH_DAYS"]


@bp.before_app_request
def _purge_the_trash_now_and_then():
    trash.purge_soon(current_app._get_current_object())


@bp.route("/trash", methods=["GET"])
@login_required
def trash_page():
    """The photos deleted in the last TRASH_DAYS days: restore them, delete them for good, or empty it."""
    photos = trash.in_trash(current_user, limit=TRASH_SHOWN)
    return render_template("analyses/trash.html", photos=photos, total=current_user.trashed, shown_limit=TRASH_SHOWN,
                           trash_days=_trash_days(), purge_at=lambda p: trash.purge_at(p, _trash_days()))


@bp.route("/trash/<public_id>/thumbnail", methods=["GET"])
@login_required
def trash_thumbnail(public_id: str):
    return sending.send_trashed_thumbnail(trash.trashed_photo(current_user, public_id))


@bp.route("/trash/undo", methods=["POST"])
@login_required
def trash_undo():
    """The Undo of a delete: what it moved comes back; then back where the person was."""
    restored = trash.undo(current_user, request.form.get("batch", ""))
    back = _local(request.form.get("back")) or url_for("analyses.gallery")
    flash(f"Restored {restored} photo{'' if restored == 1 else 's'}." if restored
          else "Nothing to undo: those photos are no longer in the Trash.", "success" if restored else "info")
    return _go_to(back)


@bp.route("/trash", methods=["POST"])
@login_required
def trash_action():
    """The Trash page's selection: `action` `restore` or `delete` (for good) the `ids`, or
    `empty` the whole Trash; then back to the Trash (or `back`, a page of this site: the upload
    queue's "Restore it")."""
    action, ids = request.form.get("action"), request.form.getlist("ids")
    if action == "empty":
        deleted = trash.empty(current_user)
        flash(f"Deleted {deleted} photo{'' if deleted == 1 else 's'} for good." if deleted
              else "The Trash was already empty.", "info")
    elif action not in ("restore", "delete"):
        flash("Choose what to do: restore the selected photos, delete them for good, or empty the Trash.", "error")
    elif not ids:
        flash("Select at least one photo first.", "error")
    elif action == "restore":
        restored = trash.restore(current_user, ids)
        flash(f"Restored {restored} photo{'' if restored == 1 else 's'} to your photos." if restored
              else "Nothing was restored: those photos are no longer in the Trash.", "success" if restored else "info")
    else:
        deleted = trash.delete_for_good(current_user, ids)
        flash(f"Deleted {deleted} photo{'' if deleted == 1 else 's'} for good.", "info")
    return _go_to(_local(request.form.get("back")) or url_for("analyses.trash_page"))


def _local(url) -> str | None:
    """`url` when it is a path of this site (an Undo's way back), else None."""
    return url if isinstance(url, str) and LOCAL_PATH.fullmatch(url) else None


@bp.route("/analyses/<public_id>/retry", methods=["POST"])
@login_required
def retry(public_id: str):
    """Queue a failed run again. A gallery card's htmx retry gets the card back (polling); the
    detail page reloads, polling until the new run ends."""
    run = lookups.owned_run(current_user, public_id, exact=True)
    _retry(lambda: uploads.retry([run]))
    if wants_partial() and not triggered_by("detail-retry"):
        return _card(run, message=_still_unavailable())
    _flash_if_still_unavailable()
    return _go_to(url_for("analyses.detail", public_id=public_id))


@bp.route("/analyses/retry-failed", methods=["POST"])
@login_required
def retry_failed():
    """Queue every failed photo of the user again (after the model was fixed, say)."""
    result = _retry(lambda: uploads.retry_all_failed(current_user))
    if result is None:
        pass  # the queue is down: _retry said so
    elif result.accepted:
        flash(f"Retrying {len(result.accepted)} photo(s).", "success")
        _flash_if_still_unavailable()
    else:
        flash("There is no failed photo to retry.", "info")
    return _go_to(url_for("analyses.gallery"))


def _retry(do) -> uploads.Queued | None:
    """A retry, or None (after saying so) when the queue cannot be reached."""
    try:
        return do()
    except uploads.QueueUnavailable as exc:
        flash(str(exc), "error")
        return None


def _still_unavailable() -> str | None:
    problem = availability()
    return f"Detection is still unavailable: {problem.reason}." if problem else None


def _flash_if_still_unavailable() -> None:
    message = _still_unavailable()
    if message:
        flash(message, "error")


def _go_to(url: str):
    """Redirect the browser to `url`: for htmx, as a full page load (HX-Redirect)."""
    if wants_partial():
        return "", 200, {"HX-Redirect": url}
    return redirect(url)
