"""The account pages' forms: sign-up, log-in, password change and reset, email change, API keys,
log out everywhere, "Download everything", account deletion."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, RadioField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp

from webapp.auth.accounts import (
    EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, PASSWORD_TOO_SHORT, normalize_email,
)


def new_password_field(label: str) -> PasswordField:
    """A password being chosen: the one policy (auth/accounts.py), for sign-up and a change."""
    return PasswordField(label, validators=[
        DataRequired(), Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH, message=PASSWORD_TOO_SHORT)])


def confirm_field(label: str) -> PasswordField:
    return PasswordField(label, validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")])


class SignupForm(FlaskForm):
    email = EmailField(
        "Email", filters=[normalize_email],
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=EMAIL_MAX_LENGTH)],
    )
    password = new_password_field("Password")
    confirm = confirm_field("Confirm password")
    invite = HiddenField()  # the invitation's token, when SIGNUP is "invite"
    submit = SubmitField("Create account")


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[normalize_email],
                       validators=[DataRequired(), Length(max=EMAIL_MAX_LENGTH)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Log in")


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    password = new_password_field("New password")
    confirm = confirm_field("Confirm the new password")
    submit = SubmitField("Change password")


class LogoutEverywhereForm(FlaskForm):
    submit = SubmitField("Log out of all devices")


class ApiKeyForm(FlaskForm):
    name = StringField("Name", filters=[lambda v: v.strip() if isinstance(v, str) else v], validators=[
        DataRequired(), Length(max=100), Regexp(r"^[^\x00-\x1f\x7f]+$", message="Use printable characters.")],
        description="What it is for, e.g. \"garage camera\" or \"backup script\".")
    scope = RadioField("Scope", default="full", choices=[
        SelectChoice("full", "Full: anything you can do in the API"),
        SelectChoice("detect-only", "Detect only: uploads for detection and the DeepStack endpoint, nothing else")])
    save_to_gallery = BooleanField("Keep DeepStack-endpoint detections in my gallery")
    submit = SubmitField("Create key")


class RevokeKeyForm(FlaskForm):
    submit = SubmitField("Revoke")


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", filters=[normalize_email],
                       validators=[DataRequired(), Email(check_deliverability=False), Length(max=EMAIL_MAX_LENGTH)])
    submit = SubmitField("Send me a link")


class ResetPasswordForm(FlaskForm):
    password = new_password_field("New password")
    confirm = confirm_field("Confirm the new password")
    # Someone else may have had the account: its API keys go too, unless the owner keeps them.
    revoke_keys = BooleanField("Also revoke its API keys (devices and scripts that use them stop working)",
                               default=True)
    submit = SubmitField("Set the new password")


class EmailChangeForm(FlaskForm):
    # Field names of their own: the account page has three forms, and ids must be unique.
    new_email = EmailField("New email address", filters=[normalize_email],
                           validators=[DataRequired(), Email(check_deliverability=False), Length(max=EMAIL_MAX_LENGTH)])
    email_password = PasswordField("Current password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    submit = SubmitField("Send a confirmation link")


class DeleteAccountForm(FlaskForm):
    delete_password = PasswordField("Your password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    submit = SubmitField("Delete my account")


class TakeoutForm(FlaskForm):
    submit = SubmitField("Download everything")
