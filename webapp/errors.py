"""What services raise when they cannot do what was asked. Each message is written for the
person who asked; the web layer (`webapp/web/answers.py`) turns an error into a page, an htmx
fragment or a problem document, by its class and kind, in one place. Services never answer HTTP."""


class DomainError(Exception):
    """Something a service refuses or cannot find; `str(error)` is the user's message."""


class NotFound(DomainError):
    """The thing does not exist, or it is not the caller's: both look exactly alike."""


class Gone(DomainError):
    """The thing was there, and has ended for good (an expired or revoked share link)."""


class Refused(DomainError):
    """Nothing was done, for a reason of this kind:

    - TOO_LARGE: the request carries more bytes than allowed
    - TOO_MANY: more items at once than allowed (files in one upload)
    - QUOTA: the account is full
    - CONFLICT: the request contradicts what is stored (a photo's only run, the most runs or keys)
    - INVALID: a value is not one the server accepts (an unknown class or model, a bad cursor)
    - UNAVAILABLE: a part of the system it needs is down right now; try again later
    """

    TOO_LARGE = "too_large"
    TOO_MANY = "too_many"
    QUOTA = "quota"
    CONFLICT = "conflict"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"

    kind = INVALID

    retry_after: int | None = None  # UNAVAILABLE: seconds to wait, when the service knows (else the web's default)

    def __init__(self, message: str, kind: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        if retry_after is not None:
            self.retry_after = retry_after
