"""Mail through the operator's SMTP server (MAIL_URL, MAIL_FROM), sent off the request by one
thread per process: a page that mails answers as fast as one that does not (a reset asked for
an unknown address looks the same, in time too), and an SMTP server that is slow or down never
holds a request. Links in mail are built from PUBLIC_URL, never from a request's Host header."""
import logging
import smtplib
import ssl
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlsplit

from flask import current_app

from webapp.extensions import db

logger = logging.getLogger(__name__)

HOW_TO_CONFIGURE = ("set MAIL_URL (smtp://user:password@host:587), MAIL_FROM and PUBLIC_URL "
                    "(docs/deployment.md, \"Accounts\")")

_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")


@dataclass(frozen=True)
class Server:
    """Where and how to send: MAIL_URL taken apart."""

    scheme: str
    host: str
    port: int
    username: Optional[str]
    password: Optional[str]
    sender: str
    timeout: float

    @classmethod
    def from_config(cls, config) -> "Server":
        url = urlsplit(config["MAIL_URL"])
        default_port = {"smtps": 465, "smtp+insecure": 25}.get(url.scheme, 587)
        return cls(url.scheme, url.hostname or "localhost", url.port or default_port,
                   unquote(url.username) if url.username else None,
                   unquote(url.password) if url.password else None,
                   config["MAIL_FROM"], float(config["MAIL_TIMEOUT"]))


def configured() -> bool:
    return bool(current_app.config.get("MAIL_URL"))


def public_link(path: str) -> str:
    """An absolute link to this path on the instance, from PUBLIC_URL (never the request's Host)."""
    return current_app.config["PUBLIC_URL"] + path


def send_later(to: str, subject: str, body: str) -> Future:
    """Queue a plain-text mail; the Future says whether it went (errors are logged, never raised
    to the page that asked)."""
    server = Server.from_config(current_app.config)
    return _sender.submit(_send, server, _message(server, to, subject, body))


def send_now(to: str, subject: str, body: str) -> bool:
    """Send a plain-text mail from this thread (the mail thread's jobs, `later`); whether it went."""
    server = Server.from_config(current_app.config)
    return _send(server, _message(server, to, subject, body))


def later(job: Callable[..., Any], *args) -> Future:
    """Run `job(*args)` in the mail thread, in an app and a request context of its own (a link's
    path can be made there; its host comes from PUBLIC_URL). Errors are logged."""
    app = current_app._get_current_object()

    def run() -> None:
        with app.test_request_context("/"):
            try:
                job(*args)
            except Exception:  # noqa: BLE001 - the page that asked has answered: the log says it
                logger.exception("Mail job %s failed", getattr(job, "__name__", job))
            finally:
                db.session.remove()

    return _sender.submit(run)


def _message(server: Server, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = server.sender, to, subject
    message["Date"], message["Message-ID"] = formatdate(localtime=False), make_msgid(domain=server.host)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def _send(server: Server, message: EmailMessage) -> bool:
    try:
        if server.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
        with smtp:
            if server.scheme == "smtp":  # STARTTLS, required: credentials never go in clear
                smtp.starttls(context=ssl.create_default_context())
            if server.username:
                smtp.login(server.username, server.password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        logger.error("Mail to %s (%s) was not sent: %s: %s. Check MAIL_URL (%s:%s).", message["To"],
                     message["Subject"], type(exc).__name__, exc, server.host, server.port)
        return False
    logger.info("Mail sent to %s: %s", message["To"], message["Subject"])
    return True
