"""Security headers, in one place, on every response.

Pages get a Content-Security-Policy with no inline script or style: scripts and styles come from
`static/` only (htmx's own indicator style is turned off in base.html and lives in app.css), and
images from the app itself plus `blob:` and `data:` (Swagger UI's icons). Swagger UI at /docs
works under the same policy (its scripts set styles through the DOM, which CSP allows; a browser
test fails on any violation).
Anything that is not HTML (JSON, images) gets `default-src 'none'`: it never runs anything.
HSTS is sent only on a request that came over HTTPS (behind a proxy: TRUSTED_PROXIES).
Pages and JSON are never stored by a cache: `private, no-store` (someone's photos, keys, links),
`no-store` for a shared link's page (anyone's to see, but not to keep once the link ends). Files
(images, exports, static assets) say their own caching where they are sent."""
from flask import Flask, Response, g, request

PAGE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' blob: data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
OTHER_POLICY = {"default-src": "'none'", "frame-ancestors": "'none'", "sandbox": ""}
PERMISSIONS = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
               "payment=(), usb=()")
HSTS = "max-age=31536000; includeSubDomains"
NOT_STORED = ("text/html", "application/json", "application/problem+json")
SHARED_PAGES = ("shares.view",)


def policy_text(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}".strip() for name, value in policy.items())


_PAGE, _OTHER = policy_text(PAGE_POLICY), policy_text(OTHER_POLICY)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _PAGE if response.mimetype == "text/html" else _OTHER)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", PERMISSIONS)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if "Cache-Control" not in headers and response.mimetype in NOT_STORED:
        headers["Cache-Control"] = "no-store" if request.endpoint in SHARED_PAGES else "private, no-store"
    _own_retry_after(response)
    return response


# ---- Retry-After says what the answer means ----
#
# flask-limiter, on a rate-limited route, sets `Retry-After` on every answer to the end of the
# limit's window (or the app's own value, whichever is later): a 503 that meant "in 2 seconds"
# would say 60, and an image sent would carry one. The app's own value is noted before the
# limiter's headers are added (`note_own_retry_after`, registered after the limiter, so it runs
# before it) and put back after (`add_security_headers`, registered before, runs after it): the
# limiter's stands on its own 429 only.

def note_own_retry_after(response: Response) -> Response:
    g.own_retry_after = response.headers.get("Retry-After")
    return response


def _own_retry_after(response: Response) -> None:
    if response.status_code == 429 or "own_retry_after" not in g:
        return
    if g.own_retry_after is None:
        response.headers.pop("Retry-After", None)
    else:
        response.headers["Retry-After"] = g.own_retry_after


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)


def init_after_limiter(app: Flask) -> None:
    app.after_request(note_own_retry_after)
