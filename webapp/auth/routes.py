from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp import accounts
from webapp.auth import bp
from webapp.auth.forms import LoginForm, SignupForm
from webapp.extensions import db, limiter, login_manager
from webapp.models import User
from webapp.pages import wants_partial

BAD_CREDENTIALS = "Invalid email or password."


@login_manager.user_loader
def load_user(user_id: str):
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


@login_manager.unauthorized_handler
def unauthorized():
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if wants_partial():  # an HTMX request: send the whole page to the login form
        return "", 401, {"HX-Redirect": login_url}
    flash("Please log in to see this page.", "info")
    return redirect(login_url)


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(auth_limit, methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("analyses.gallery"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.normalized_email, form.password.data)
        except accounts.EmailTaken:
            form.email.errors.append("An account with this email already exists. Log in instead?")
        else:
            login_user(user)
            flash("Welcome! Your account is ready: drop a photo to analyse it.", "success")
            return redirect(url_for("analyses.gallery"))
    return render_template("auth/signup.html", form=form), 200 if not form.errors else 422


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(auth_limit, methods=["POST"])
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("analyses.gallery"))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.normalized_email, form.password.data)
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
