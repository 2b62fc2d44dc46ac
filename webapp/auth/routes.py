"""The account pages: sign-up, log-in and log-out, the account page (password, usage, log out
everywhere) and the API keys page."""

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.analyses.quotas import usage
from webapp.auth import accounts, auth_rate_limit, bp, keys
from webapp.auth.forms import (
    ApiKeyForm, LoginForm, LogoutEverywhereForm, PasswordChangeForm, RevokeKeyForm, SignupForm,
)
from webapp.extensions import login_manager
from webapp.models import User
from webapp.web.htmx import wants_partial

BAD_CREDENTIALS = "Invalid email or password."

NEW_KEY = "new_api_key"  # the session entry a new key's secret waits in for the page that shows it


@login_manager.user_loader
def load_user(login_id: str):
    return accounts.load_login(login_id)


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
    try:
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
    except ValueError:  # not a URL (`http://[x`): the request's own path, as without the header
        return request.full_path.rstrip("?")
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
            user = accounts.create_user(form.email.data, form.password.data)
        except accounts.EmailTaken:
            form.email.errors.append("An account with this email already exists. Log in instead?")
        else:
            login_user(user)
            flash("Welcome! Your account is ready: drop a photo to analyse it.", "success")
            return remember_device(redirect(url_for("analyses.gallery")), user)
    return render_template("auth/signup.html", form=form), 200 if not form.errors else 422


@bp.route("/login", methods=["GET", "POST"])
@auth_rate_limit
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("analyses.gallery"))
    form = LoginForm()
    status = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data,
                                         request.cookies.get(accounts.DEVICE_COOKIE))
        except accounts.TooManyFailures as exc:
            form.form_errors.append(str(exc))
            status = 429
        else:
            if user is not None:
                login_user(user, remember=form.remember.data)
                flash("You are logged in.", "success")
                return remember_device(redirect(next_url or url_for("analyses.gallery")), user)
            form.form_errors.append(BAD_CREDENTIALS)
    status = status or (401 if form.form_errors else (422 if form.errors else 200))
    return render_template("auth/login.html", form=form, next_url=next_url), status


def remember_device(response, user: User):
    """This browser signed in to the account: give it a device cookie (see services), unless it
    has a genuine one for this account already."""
    if accounts.device_nonce(request.cookies.get(accounts.DEVICE_COOKIE), user) is None:
        response.set_cookie(accounts.DEVICE_COOKIE, accounts.new_device_token(user),
                            max_age=accounts.DEVICE_COOKIE_DAYS * 86400, httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    accounts.end_sessions(current_user._get_current_object())
    logout_user()
    session.pop(NEW_KEY, None)  # a new key's sealed secret not shown yet (not session.clear(): Flask-Login's
    # own entry, set by logout_user, clears the remember cookie)
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET"])
@login_required
def account():
    return _account_page(PasswordChangeForm(formdata=None))


def _account_page(password_form: PasswordChangeForm, status: int = 200):
    return render_template("auth/account.html", password_form=password_form,
                           everywhere_form=LogoutEverywhereForm(formdata=None), usage=usage(current_user)), status


@bp.route("/account/password", methods=["POST"])
@login_required
@auth_rate_limit
def change_password():
    """A new password (the current one required): every other browser session and API token
    ends; this browser stays signed in."""
    form = PasswordChangeForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        try:
            right = accounts.check_current_password(user, form.current.data,
                                                    request.cookies.get(accounts.DEVICE_COOKIE))
        except accounts.TooManyFailures as exc:
            form.current.errors.append(str(exc))
            return _account_page(form, 429)
        if not right:
            form.current.errors.append("Your current password is not right.")
        else:
            accounts.end_everything(user, new_password=form.password.data)
            remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
            login_user(user, remember=remembered)  # this browser, with the new session version
            flash("Your password is changed. Your other devices and API tokens are logged out.", "success")
            return redirect(url_for("auth.account"))
    return _account_page(form, 422)


@bp.route("/account/logout-everywhere", methods=["POST"])
@login_required
def logout_everywhere():
    form = LogoutEverywhereForm()
    if not form.validate_on_submit():
        return _account_page(PasswordChangeForm(formdata=None), 400)
    accounts.end_everything(current_user._get_current_object())
    logout_user()
    session.pop(NEW_KEY, None)
    flash("You are logged out on every device, and every API token is revoked.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/keys", methods=["GET", "POST"])
@login_required
def api_keys():
    """The API keys page: create one, list and revoke them. A new key's secret is shown once, on
    the page the creation redirects to (post/redirect/get: a reload makes no second key); it
    waits for that page in the session, encrypted (keys.seal) and for a few minutes at most,
    and the next load of this page (or a log-out) takes it out."""
    form = ApiKeyForm()
    user = current_user._get_current_object()
    new, status = None, 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                key, raw = keys.create(user, form.name.data, form.scope.data, form.save_to_gallery.data)
            except keys.TooManyKeys as exc:
                form.name.errors.append(str(exc))
                status = 409
            else:
                session[NEW_KEY] = {"id": key.id, "name": key.name, "sealed": keys.seal(raw)}
                return redirect(url_for("auth.api_keys"), 303)
        else:
            status = 422
    else:
        new = session.pop(NEW_KEY, None)
    listed = keys.list_keys(user)
    secret = keys.unseal(new.get("sealed")) if isinstance(new, dict) else None
    created = (new["name"], secret) if secret and any(k.id == new.get("id") for k in listed) else None
    page = render_template("auth/keys.html", form=form, created=created, keys=listed,
                           revoke_form=RevokeKeyForm(formdata=None))
    return page, status, {"Cache-Control": "private, no-store"}  # it may hold a new key's secret


@bp.route("/account/keys/<int:key_id>/revoke", methods=["POST"])
@login_required
def revoke_api_key(key_id: int):
    if RevokeKeyForm().validate_on_submit() and keys.revoke(current_user._get_current_object(), key_id):
        flash("The API key is revoked: it stopped working at once.", "info")
    else:
        flash("That API key does not exist (it may have been revoked already).", "error")
    return redirect(url_for("auth.api_keys"))
