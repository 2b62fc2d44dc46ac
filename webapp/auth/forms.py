from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from webapp.auth.services import (
    EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, PASSWORD_TOO_SHORT, normalize_email,
)


class SignupForm(FlaskForm):
    email = EmailField(
        "Email", filters=[normalize_email],
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=EMAIL_MAX_LENGTH)],
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH,
                                           message=PASSWORD_TOO_SHORT)],
    )
    confirm = PasswordField(
        "Confirm password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )
    submit = SubmitField("Create account")


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[normalize_email],
                       validators=[DataRequired(), Length(max=EMAIL_MAX_LENGTH)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Log in")
