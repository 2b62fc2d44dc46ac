"""The account pages: sign-up, log-in and log-out, the account page (password, usage, log out
everywhere, email, "Download everything", deletion), the forgotten password's and the email
change's pages, and the API keys page."""

from typing import Optional
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, send_file, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.analyses.quotas import usage
from webapp.auth import accounts, auth_rate_limit, bp, closing, keys, links, mail, recovery, takeout
from webapp.auth.forms import (
    ApiKeyForm, DeleteAccountForm, EmailChangeForm, ForgotPasswordForm, LoginForm, LogoutEverywhereForm,
    PasswordChangeForm, ResetPasswordForm, RevokeKeyForm, SignupForm, TakeoutForm,
)
from webapp.extensions import login_manager
from webapp.models import User
from webapp.web import delivery
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
    """Sign-up as SIGNUP allows: open, by invitation (`?invite=<token>`, for its email only), or
    closed (a page that says so)."""
    if current_user.is_authenticated:
        return redirect(url_for("analyses.gallery"))
    mode = accounts.signup_mode()
    form = SignupForm()
    if request.method == "GET" and request.args.get("invite"):
        form.invite.data = request.args["invite"]
    invited = None
    if form.invite.data:
        try:
            invited = links.invite_for(form.invite.data)
        except links.LinkRefused as exc:
            return render_template("auth/link_refused.html", title="This invitation does not work",
                                   message=str(exc)), 410
        if request.method == "GET":
            form.email.data = invited.email
    if mode == "closed" or (mode == "invite" and invited is None):
        return render_template("auth/signup_closed.html", mode=mode), 403
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.sign_up(form.email.data, form.password.data, form.invite.data or None)
        except accounts.EmailTaken:
            form.email.errors.append("An account with this email already exists. Log in instead?")
        except (accounts.SignupRefused, links.LinkRefused) as exc:
            form.email.errors.append(str(exc))
            status = 403
        else:
            login_user(user)
            flash("Welcome! Your account is ready: drop a photo to analyse it.", "success")
            return remember_device(redirect(url_for("analyses.gallery")), user)
    status = status if status != 200 else (200 if not form.errors else 422)
    return render_template("auth/signup.html", form=form, invited=invited), status


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
        except accounts.AccountDisabled as exc:
            form.form_errors.append(str(exc))
            status = 403
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


def _account_page(password_form: Optional[PasswordChangeForm] = None, status: int = 200,
                  email_form: Optional[EmailChangeForm] = None, delete_form: Optional[DeleteAccountForm] = None):
    user = current_user._get_current_object()
    page = render_template(
        "auth/account.html", password_form=password_form or PasswordChangeForm(formdata=None),
        everywhere_form=LogoutEverywhereForm(formdata=None), usage=usage(user),
        email_form=email_form or EmailChangeForm(formdata=None),
        delete_form=delete_form or DeleteAccountForm(formdata=None),
        takeout_form=TakeoutForm(formdata=None), takeout=takeout.latest(user), mail_ready=mail.configured())
    return page, status, {"Cache-Control": "private, no-store"}


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
            recovery.notify_password_changed(user, " on the account page")
            flash("Your password is changed. Your other devices and API tokens are logged out.", "success")
            return redirect(url_for("auth.account"))
    return _account_page(form, 422)


@bp.route("/account/logout-everywhere", methods=["POST"])
@login_required
def logout_everywhere():
    form = LogoutEverywhereForm()
    if not form.validate_on_submit():
        return _account_page(status=400)
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


# ---- a forgotten password ----

SENT = ("If an account uses {email}, a link to reset its password is on its way there. It works once, "
        "for one hour. Nothing after a few minutes? Check the spam folder, or ask again.")


@bp.route("/forgot-password", methods=["GET", "POST"])
@auth_rate_limit
def forgot_password():
    """Ask for a reset link by email. The answer is the same whether or not an account uses the
    address (and so is its time: recovery.py)."""
    form = ForgotPasswordForm()
    if not mail.configured():
        return render_template("auth/forgot.html", form=form, mail_ready=False), 200
    if form.validate_on_submit():
        recovery.request_reset(form.email.data, lambda token: url_for("auth.reset_password", token=token))
        flash(SENT.format(email=form.email.data), "info")
        return redirect(url_for("auth.login"), 303)
    return render_template("auth/forgot.html", form=form, mail_ready=True), 200 if not form.errors else 422


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@auth_rate_limit
def reset_password(token: str):
    """Set a new password with a reset (or the operator's set-password) link: once."""
    try:
        user = links.user_for_reset(token)
    except links.LinkRefused as exc:
        return _link_refused("This link does not work", str(exc), forgot=True)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            recovery.reset_password(token, form.password.data, request.cookies.get(accounts.DEVICE_COOKIE),
                                    revoke_keys=form.revoke_keys.data)
        except links.LinkRefused as exc:
            return _link_refused("This link does not work", str(exc), forgot=True)
        if current_user.is_authenticated:
            logout_user()
        session.pop(NEW_KEY, None)
        flash("Your new password is set, and every device is logged out: log in with it.", "success")
        return redirect(url_for("auth.login"), 303)
    page = render_template("auth/reset.html", form=form, email=user.email, token=token,
                           key_count=len(keys.list_keys(user)))
    return page, 200 if not form.errors else 422, {"Cache-Control": "private, no-store"}


def _link_refused(title: str, message: str, forgot: bool = False):
    page = render_template("auth/link_refused.html", title=title, message=message, forgot=forgot)
    return page, 410, {"Cache-Control": "private, no-store"}


# ---- the account page's other sections ----

def _password_refused(form, password, wrong: str) -> Optional[int]:
    """The status to answer when `form` is invalid or its `password` field is not the signed-in
    user's (its error added; failures count towards the lock-out); None when it is."""
    if not form.validate_on_submit():
        return 422
    try:
        right = accounts.check_current_password(current_user._get_current_object(), password.data,
                                                request.cookies.get(accounts.DEVICE_COOKIE))
    except accounts.TooManyFailures as exc:
        password.errors.append(str(exc))
        return 429
    if not right:
        password.errors.append(wrong)
        return 422
    return None


@bp.route("/account/email", methods=["POST"])
@login_required
@auth_rate_limit
def change_email():
    """Send a confirmation link to a new address (the current password required)."""
    form = EmailChangeForm()
    user = current_user._get_current_object()
    refused = _password_refused(form, form.email_password, "Your current password is not right.")
    if refused:
        return _account_page(status=refused, email_form=form)
    try:
        recovery.request_email_change(user, form.new_email.data,
                                      lambda token: url_for("auth.confirm_email", token=token))
    except (accounts.EmailTaken, accounts.MailUnavailable, accounts.TooManyMails) as exc:
        form.new_email.errors.append(str(exc))
        return _account_page(status=429 if isinstance(exc, accounts.TooManyMails) else 422, email_form=form)
    flash(f"A link to confirm it is on its way to {form.new_email.data}: your address changes once it is opened "
          "(within a day).", "info")
    return redirect(url_for("auth.account"), 303)


@bp.route("/account/email/<token>", methods=["GET", "POST"])
@auth_rate_limit
def confirm_email(token: str):
    """The new address's link: a page with a button (a mail scanner that opens links changes nothing)."""
    try:
        user, new_email = links.email_change_for(token)
    except links.LinkRefused as exc:
        return _link_refused("This link does not work", str(exc))
    form = LogoutEverywhereForm()  # a button and its CSRF token
    if request.method == "POST" and form.validate_on_submit():
        try:
            recovery.confirm_email(token)
        except links.LinkRefused as exc:
            return _link_refused("This link does not work", str(exc))
        except accounts.EmailTaken as exc:
            return _link_refused("This address cannot be used", str(exc))
        flash(f"Your email address is now {new_email}.", "success")
        return redirect(url_for("auth.account" if current_user.is_authenticated else "auth.login"), 303)
    page = render_template("auth/confirm_email.html", form=form, old=user.email, new=new_email, token=token)
    return page, 200, {"Cache-Control": "private, no-store"}


@bp.route("/account/takeout", methods=["POST"])
@login_required
def start_takeout():
    if not TakeoutForm().validate_on_submit():
        return _account_page(status=400)
    try:
        takeout.start(current_user._get_current_object())
    except takeout.TakeoutBusy:
        flash("Your download is being made already.", "info")
    return redirect(url_for("auth.account", _anchor="takeout-heading"), 303)


@bp.route("/account/takeout/status", methods=["GET"])
@login_required
def takeout_status():
    """The "Download everything" section alone (polled while it is being made)."""
    return render_template("auth/_takeout.html", takeout=takeout.latest(current_user._get_current_object()),
                           takeout_form=TakeoutForm(formdata=None)), 200, {"Cache-Control": "private, no-store"}


@bp.route("/account/takeout/<public_id>", methods=["GET"])
@login_required
def download_takeout(public_id: str):
    made, path = takeout.file_of(current_user._get_current_object(), public_id)
    stamp = made.finished_at.strftime("%Y-%m-%d")
    return delivery.private(send_file(path, mimetype="application/zip", as_attachment=True,
                                      download_name=f"spotter-{stamp}.zip", conditional=True))


@bp.route("/account/delete", methods=["POST"])
@login_required
@auth_rate_limit
def delete_account():
    """Delete the account with everything in it (the password required), and end every session."""
    form = DeleteAccountForm()
    user = current_user._get_current_object()
    refused = _password_refused(form, form.delete_password, "That is not your password: nothing was deleted.")
    if refused:
        return _account_page(status=refused, delete_form=form)
    email, photos = user.email, user.photos
    closing.delete_account(user)
    recovery.notify_deleted(email, photos)
    logout_user()
    session.pop(NEW_KEY, None)
    flash("Your account is deleted, with every photo, result, API key, share link and download.", "info")
    response = redirect(url_for("analyses.index"), 303)
    response.delete_cookie(accounts.DEVICE_COOKIE)
    return response
