from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.auth import auth_rate_limit, bp, services
from webapp.auth.forms import LoginForm, SignupForm
from webapp.extensions import db, login_manager
from webapp.htmx import wants_partial
from webapp.models import User

BAD_CREDENTIALS = "Invalid email or password."


@login_manager.user_loader
def load_user(user_id: str):
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


@login_manager.unauthorized_handler
def unauthorized():
    login_url = url_for("auth.login", next=_page_to_return_to())
    if wants_partial():  # a script's request: it sends the whole page to the login form
        flash("Your session has ended: please log in again.", "info")
        return "", 401, {"HX-Redirect": login_url}
    flash("Please log in to see this page.", "info")
    return redirect(login_url)


def _page_to_return_to() -> str:
    """This request's path, or for an htmx request the page it was made from (not the fragment)."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    if current.path and current.netloc == request.host:
        return current.path + (f"?{current.query}" if current.query else "")
    return request.full_path.rstrip("?")


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.route("/signup", methods=["GET", "POST"])
@auth_rate_limit
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("analyses.gallery"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = services.create_user(form.email.data, form.password.data)
        except services.EmailTaken:
            form.email.errors.append("An account with this email already exists. Log in instead?")
        else:
            login_user(user)
            flash("Welcome! Your account is ready: drop a photo to analyse it.", "success")
            return redirect(url_for("analyses.gallery"))
    return render_template("auth/signup.html", form=form), 200 if not form.errors else 422


@bp.route("/login", methods=["GET", "POST"])
@auth_rate_limit
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("analyses.gallery"))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user, remember=form.remember.data)
            flash("You are logged in.", "success")
            return redirect(next_url or url_for("analyses.gallery"))
        form.form_errors.append(BAD_CREDENTIALS)
    status = 401 if form.form_errors else (422 if form.errors else 200)
    return render_template("auth/login.html", form=form, next_url=next_url), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
