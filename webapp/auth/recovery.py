"""A forgotten password and a new email address: links by mail (auth/mail.py), signed and
single-use (auth/links.py).

A reset asked for an address answers the same whether or not an account uses it, and takes the
same time: the request only counts the address against the limit and hands it to the mail
thread, which looks the account up, makes the link and sends it (bench/reset_timing.py).
RESET_RATE_LIMIT counts per address (an account's, or not), so the limit tells nothing either;
RATELIMIT_AUTH counts per client address on top (the route's)."""
import logging
from typing import Callable, Optional

from flask import current_app
from limits import parse

from webapp.auth import accounts, keys, links, mail
from webapp.extensions import limiter, shared_limits
from webapp.models import User

logger = logging.getLogger(__name__)

RESET_MAIL = """Hello,

Someone (we hope you) asked to reset the password of your Spotter account ({email}).
Open this link to choose a new one. It works once, for one hour:

{link}

Setting a new password logs you out everywhere (browsers and the API's tokens); the page also
offers to revoke your API keys.
If you did not ask, ignore this mail: your password stays as it is.
"""

EMAIL_CHANGE_MAIL = """Hello,

Someone (we hope you) asked to use this address ({new}) for the Spotter account {old}.
Open this link to confirm it. It works once, for a day:

{link}

If you did not ask, ignore this mail: nothing changes.
"""

EMAIL_CHANGE_NOTICE = """Hello,

Someone signed in to your Spotter account ({old}) asked to change its email address to {new}.
It changes only once that address confirms it. If it was not you, change your password now.
"""


PASSWORD_NOTICE = """Hello,

The password of your Spotter account ({email}) was just changed{how}. Every device and API token
was logged out.

If it was not you, reset it now from the log-in page ("Forgot your password?"), or ask the
operator of this instance.
"""

DELETED_NOTICE = """Hello,

Your Spotter account ({email}) was deleted, with its {photos} photos, every result, API key, share
link and download. Nothing of it is kept.
"""


def notify_password_changed(user: User, how: str = "") -> None:
    """Tell the owner their password changed (a security notice), where mail is set up."""
    if mail.configured():
        mail.send_later(user.email, "Your Spotter password was changed",
                        PASSWORD_NOTICE.format(email=user.email, how=how))


def notify_deleted(email: str, photos: int) -> None:
    """Tell the owner their account is gone (the address is not kept anywhere else)."""
    if mail.configured():
        mail.send_later(email, "Your Spotter account was deleted",
                        DELETED_NOTICE.format(email=email, photos=photos))


def _within_reset_limit(email: str, namespace: str = "password-reset") -> bool:
    """Count one mail to this address (RESET_RATE_LIMIT); False past the limit."""
    if not limiter.enabled:
        return True
    return shared_limits.hit(parse(current_app.config["RESET_RATE_LIMIT"]), namespace,
                             accounts.email_key(email)) is not False


def request_reset(email: str, link_for: Callable[[str], str]) -> None:
    """Mail a reset link (`link_for(token)`: the page's path) to `email` when an enabled account
    uses it, within RESET_RATE_LIMIT. The request only counts the address and hands it on: the
    account is looked up, and the link made and mailed, by the mail thread, so the request does
    the same work, in the same time, whoever the address is (see the module's docstring)."""
    email = accounts.normalize_email(email)
    within = _within_reset_limit(email)
    if not mail.configured():
        logger.warning("A password reset was asked for, but mail is not set up: %s, or reset it with "
                       "`flask users reset-password EMAIL`.", mail.HOW_TO_CONFIGURE)
        return
    if not within:
        logger.info("Password reset not mailed: RESET_RATE_LIMIT reached for that address")
        return
    mail.later(_mail_reset, email, link_for)


def _mail_reset(email: str, link_for: Callable[[str], str]) -> None:
    """In the mail thread (an app and a request context of its own): the reset mail, if an
    enabled account uses this address."""
    user = accounts.find_user(email)
    if user is None or user.is_disabled:
        return
    link = mail.public_link(link_for(links.reset_token(user)))
    mail.send_now(user.email, "Reset your Spotter password", RESET_MAIL.format(email=user.email, link=link))


def reset_password(token: str, password: str, device: Optional[str] = None, revoke_keys: bool = False) -> User:
    """Set a new password with a reset link: every session, remember-me cookie, access token and
    refresh token of the account ends (and with `revoke_keys`, its API keys), and its failed
    sign-ins are forgotten. Once only: the new password is set only over the one the link was
    made for (two uses at once: the second is refused). `device`: the browser's device cookie,
    whose own failures are forgotten too. Raises links.LinkRefused."""
    user = links.user_for_reset(token)
    if not accounts.replace_password(user, user.password_hash, password):
        raise links.LinkRefused(links.USED)
    if revoke_keys:
        keys.revoke_all(user)
    accounts.forget_failures(user, device)
    notify_password_changed(user, " with a reset link")
    logger.info("Password of user %s set with a reset link; every session and token ended", user.id)
    return user


def request_email_change(user: User, new_email: str, link_for: Callable[[str], str]) -> None:
    """Mail a confirmation link (`link_for(token)`: the page's path) to the new address (and a
    notice to the current one). An address another account uses gets no link, and the caller
    answers the same (no enumeration)."""
    new_email = accounts.normalize_email(new_email)
    if not mail.configured():
        raise accounts.MailUnavailable("Mail is not set up on this instance: ask its operator to change "
                                       "your address.")
    if new_email == user.email:
        raise accounts.EmailTaken("That is your address already.")
    if not _within_reset_limit(user.email, "email-change"):  # nobody's mailbox filled from an account
        raise accounts.TooManyMails("Too many address changes asked for: try again in an hour.")
    if accounts.find_user(new_email) is not None:
        logger.info("Email change of user %s not mailed: the new address has an account", user.id)
        return
    link = mail.public_link(link_for(links.email_token(user, new_email)))
    mail.send_later(new_email, "Confirm your new Spotter address",
                    EMAIL_CHANGE_MAIL.format(new=new_email, old=user.email, link=link))
    mail.send_later(user.email, "Your Spotter address is being changed",
                    EMAIL_CHANGE_NOTICE.format(old=user.email, new=new_email))


def confirm_email(token: str) -> User:
    """Apply an email-change link. Raises links.LinkRefused, accounts.EmailTaken."""
    user, new_email = links.email_change_for(token)
    return accounts.change_email(user, new_email)
