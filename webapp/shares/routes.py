"""The owner's side (share a finished run, list and revoke links) and anyone's side (the shared
page and its images, sent with `noindex` and `Referrer-Policy: no-referrer`)."""
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from webapp.analyses import lookups, sending, viewer
from webapp.errors import Refused
from webapp.extensions import limiter
from webapp.models import ShareLink, utcnow
from webapp.shares import bp, links
from webapp.web import delivery

SHARED_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow, noarchive"}
SHARED_VARIANTS = ("original", "annotated")  # not the thumbnail: the page does not show it


def url_for_link(link: ShareLink) -> str:
    return url_for("shares.view", token=links.token_for(link), _external=True)


# ---- the owner's side ----

@bp.route("/analyses/<public_id>/share", methods=["POST"])
@login_required
def share(public_id: str):
    run = lookups.owned_run(current_user, public_id, exact=True)
    back = url_for("analyses.detail", public_id=public_id)
    choice = request.form.get("expires", "7d")
    if choice not in links.LIFETIMES:
        flash("Choose how long the link lasts: 1 day, 7 days, 30 days or never.", "error")
        return redirect(back)
    try:
        link = links.create(run, links.LIFETIMES[choice][1])
    except Refused as exc:
        flash(str(exc), "error")
        return redirect(back)
    flash({"text": "Link created: anyone who has it sees this result (not your account or other photos).",
           "label": "The new share link", "value": url_for_link(link)}, "copy")
    return redirect(back)


@bp.route("/account/shares", methods=["GET"], endpoint="links")
@login_required
def links_page():
    return render_template("shares/links.html", links=links.links_of(current_user), now=utcnow(),
                           url_of=url_for_link, new=request.args.get("new"))


@bp.route("/account/shares/<share_id>/revoke", methods=["POST"])
@login_required
def revoke(share_id: str):
    links.revoke(current_user, share_id)
    flash("Link revoked: it no longer shows anything.", "info")
    return redirect(url_for("shares.links"))


# ---- anyone with the link ----

@bp.route("/s/<token>", methods=["GET"])
def view(token: str):
    try:
        link = links.resolve(token)
    except links.LinkGone as gone:
        return render_template("shares/gone.html", reason=gone.reason), 410
    if request.method == "GET":  # not a HEAD
        links.count_view(link)
    run = link.run
    return render_template(
        "shares/view.html", run=run, **viewer.viewer(run),
        urls={"original": url_for("shares.image", token=token, variant="original"),
              "display": url_for("shares.image", token=token, variant="original"),
              "annotated": url_for("shares.image", token=token, variant="annotated"), "json": None},
        photo_name="Shared photo", stepping=False, shared=True,  # no dates, no model: the owner's
    )


@bp.after_request
def _shared_headers(response):
    """Every answer of a shared page or image, errors included: not indexed, no referrer."""
    if request.endpoint in ("shares.view", "shares.image"):
        for name, value in SHARED_HEADERS.items():
            response.headers[name] = value
    return response


@bp.route("/s/<token>/image/<variant>", methods=["GET"])
@limiter.limit(lambda: current_app.config["SHARE_IMAGE_RATE_LIMIT"])
def image(token: str, variant: str):
    """The shared run's original or annotated image (Gone: a 410, as `web/answers.py` says it)."""
    link = links.resolve(token)
    if variant not in SHARED_VARIANTS:
        abort(404, description="No such image.")
    download = request.args.get("download") == "1"
    response = sending.send_shared(link.run, variant, request.args, download)  # no metadata, no dates
    # never the owner's file name, shown or saved: "shared-annotated.jpg"
    suffix = ".jpg" if variant == "annotated" else "." + sending.public_extension(link.run)
    return delivery.attach(response, f"shared-{variant}{suffix}", "attachment" if download else "inline")


@bp.app_template_filter("lifetime")
def lifetime(seconds) -> str:
    return links.lifetime_name(seconds)
