"""Share links: a read-only page of one analysis's result (annotated image, live boxes with the
slider, detection table) for anyone who has the link, without signing in.

- The link is `/s/<token>`: an itsdangerous URL-safe *timed* token (its own salt) carrying the
  link's random `share_id` and nothing else, stamped with the moment the link was made, so the
  same link can be shown again on the "Shared links" page. A changed SECRET_KEY ends every link.
- Each link lives 1, 7 or 30 days, or forever (the row's `lifetime_seconds`, checked as the
  token's max age), and can be revoked; an expired or revoked link is a friendly 410 page, a
  tampered or unknown one (or one whose photo was deleted: its rows go with it) a 404 page.
- The page shows no email, no other photo and no id that any other route takes: its images
  come only through the token. It is sent with `noindex` and `Referrer-Policy: no-referrer`.
"""
from datetime import datetime, timezone
from typing import Optional

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import selectinload

from webapp.analyses import services
from webapp.extensions import db, limiter
from webapp.models import Analysis, ShareLink, utcnow

bp = Blueprint("shares", __name__)

SALT = "share-link"
DAY = 24 * 3600
LIFETIMES = {"1d": ("1 day", DAY), "7d": ("7 days", 7 * DAY), "30d": ("30 days", 30 * DAY), "never": ("Never", None)}
MAX_LINKS_PER_USER = 500
NOT_FOUND = ("This link does not exist: check that it was copied whole. The photo (or that run of it) may also "
             "have been deleted.")
SHARED_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow, noarchive"}


class LinkGone(Exception):
    """The link was real but has expired or been revoked."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _serializer(moment: Optional[datetime] = None) -> URLSafeTimedSerializer:
    """The links' serializer; with `moment`, one that stamps tokens with that time (so a link
    made earlier comes out the same when it is shown again)."""
    signer = TimestampSigner
    if moment is not None:
        stamp = int(moment.timestamp())
        signer = type("StampedSigner", (TimestampSigner,), {"get_timestamp": lambda self: stamp})
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT, signer=signer)


def token_for(link: ShareLink) -> str:
    return _serializer(link.created_at).dumps({"s": link.share_id})


def url_for_link(link: ShareLink) -> str:
    return url_for("shares.view", token=token_for(link), _external=True)


def create(analysis: Analysis, lifetime: Optional[int]) -> ShareLink:
    """A new link to the analysis (owned by its owner). Commits."""
    now = utcnow()
    count = sum(1 for link in db.session.scalars(sa.select(ShareLink).where(  # the live ones: not expired
        ShareLink.user_id == analysis.user_id, ShareLink.revoked_at.is_(None)))
        if link.expires_at is None or link.expires_at > now)
    if count >= MAX_LINKS_PER_USER:
        raise ValueError(f"You already have {MAX_LINKS_PER_USER} shared links: revoke some first.")
    link = ShareLink(user_id=analysis.user_id, analysis_id=analysis.id, lifetime_seconds=lifetime,
                     created_at=utcnow().replace(microsecond=0))
    db.session.add(link)
    db.session.commit()
    return link


def resolve(token: str) -> ShareLink:
    """The live link this token is. Raises LinkGone (expired, revoked) or aborts 404."""
    if len(token) > 300:
        abort(404, description=NOT_FOUND)
    serializer = _serializer()
    try:
        payload = serializer.loads(token)  # signature only, first: which link is it?
        share_id = payload["s"] if isinstance(payload, dict) else None
    except (BadSignature, KeyError, TypeError, ValueError):
        abort(404, description=NOT_FOUND)
    link = db.session.scalar(sa.select(ShareLink).where(ShareLink.share_id == str(share_id)).options(
        selectinload(ShareLink.analysis).selectinload(Analysis.detections)))
    if link is None:
        abort(404, description=NOT_FOUND)
    if link.revoked_at is not None:
        raise LinkGone("The owner stopped sharing this photo.")
    if link.lifetime_seconds is not None:
        try:
            serializer.loads(token, max_age=link.lifetime_seconds)
        except SignatureExpired as exc:
            stamped = exc.date_signed
            if not (stamped and stamped > datetime.now(timezone.utc)):  # ahead: another host's clock runs fast
                raise LinkGone("This link has expired.") from exc
    if not link.analysis.is_done:
        abort(404, description=NOT_FOUND)
    return link


def _gone(reason: str):
    return render_template("shares/gone.html", reason=reason), 410


# ---- the owner's side ----

@bp.route("/analyses/<public_id>/share", methods=["POST"])
@login_required
def share(public_id: str):
    analysis = services.get_owned_analysis(current_user, public_id, exact=True)
    choice = request.form.get("expires", "7d")
    if choice not in LIFETIMES:
        flash("Choose how long the link lasts: 1 day, 7 days, 30 days or never.", "error")
        return redirect(url_for("analyses.detail", public_id=public_id))
    if not analysis.is_done:
        flash("Only a finished result can be shared.", "error")
        return redirect(url_for("analyses.detail", public_id=public_id))
    try:
        link = create(analysis, LIFETIMES[choice][1])
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("analyses.detail", public_id=public_id))
    flash("Link created: anyone who has it sees this result (not your account or other photos).", "success")
    return redirect(url_for("shares.links", new=link.share_id) + f"#link-{link.share_id}")


@bp.route("/account/shares", methods=["GET"])
@login_required
def links():
    rows = list(db.session.scalars(sa.select(ShareLink).where(ShareLink.user_id == current_user.id)
                                   .options(selectinload(ShareLink.analysis))
                                   .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())))
    now = utcnow()
    return render_template("shares/links.html", links=rows, now=now, url_of=url_for_link,
                           new=request.args.get("new"))


@bp.route("/account/shares/<share_id>/revoke", methods=["POST"])
@login_required
def revoke(share_id: str):
    link = db.session.scalar(sa.select(ShareLink).where(ShareLink.share_id == share_id,
                                                        ShareLink.user_id == current_user.id))
    if link is None:
        abort(404, description="This link does not exist (any more).")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        db.session.commit()
    flash("Link revoked: it no longer shows anything.", "info")
    return redirect(url_for("shares.links"))


# ---- anyone with the link ----

@bp.route("/s/<token>", methods=["GET"])
def view(token: str):
    try:
        link = resolve(token)
    except LinkGone as gone:
        return _gone(gone.reason)
    if request.method == "GET":  # not a HEAD
        db.session.execute(sa.update(ShareLink).where(ShareLink.id == link.id).values(views=ShareLink.views + 1))
        db.session.commit()
    analysis = link.analysis
    return render_template(
        "shares/view.html", analysis=analysis, **services.viewer(analysis),
        urls={"original": url_for("shares.image", token=token, variant="original"),
              "annotated": url_for("shares.image", token=token, variant="annotated"), "json": None},
        photo_name="Shared photo", stepping=False, expires_at=link.expires_at,
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
    try:
        link = resolve(token)
    except LinkGone as gone:
        abort(410, description=gone.reason)
    if variant not in ("original", "annotated"):
        abort(404, description="No such image.")
    analysis = link.analysis
    download = request.args.get("download") == "1"
    if variant == "annotated" and ("conf" in request.args or "classes" in request.args):
        min_conf, classes = services.view_params(analysis, request.args)
        response = services.send_annotated_view(analysis, min_conf, classes, download=download)
    else:
        response = services.send_image(analysis, variant, download=download)
    # never the owner's file name, shown or saved: "shared-annotated.jpg"
    suffix = ".jpg" if variant == "annotated" else "." + analysis.original_path.rsplit(".", 1)[-1]
    response.headers.set("Content-Disposition", "attachment" if download else "inline",
                         filename=f"shared-{variant}{suffix}")
    return response


def init_app(app) -> None:
    app.register_blueprint(bp)

    @app.template_filter("lifetime")
    def lifetime(seconds: Optional[int]) -> str:
        return next((name for name, value in LIFETIMES.values() if value == seconds), f"{seconds} s")
