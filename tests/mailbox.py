"""A real SMTP server for the account tests (aiosmtpd, on a free port): what the app mails
arrives here, and a test reads it as a mail client would."""
import email
import email.policy
import re
import socket
import threading
import time
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "mailer", "s3cret:@pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """Every message the server received, and who logged in to send it."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self._arrived = threading.Condition()
        self.port = free_port()

    # aiosmtpd's handler
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
                USER, PASSWORD):
            self.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    @property
    def url(self) -> str:
        """MAIL_URL for this server (no TLS here; credentials percent-encoded as the docs say)."""
        return f"smtp+insecure://{USER}:s3cret%3A%40pass@127.0.0.1:{self.port}"

    def settings(self, **more) -> dict:
        return {"MAIL_URL": self.url, "MAIL_FROM": "Spotter <noreply@photos.example.com>",
                "PUBLIC_URL": "https://photos.example.com", **more}

    def wait_for(self, to: str, count: int = 1, timeout: float = 10) -> EmailMessage:
        """The `count`-th message to `to` (waiting for it)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.to(to)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no mail to {to} arrived (got: {[m['To'] for m in self.messages]})"
                self._arrived.wait(left)
            return self.to(to)[count - 1]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def link(message: EmailMessage) -> str:
        """The link in a mail's text."""
        return re.search(r"https?://\S+", message.get_content()).group(0)


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=box.port, authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    yield box
    controller.stop()
