"""`GET /healthz`: 200 while the database answers, 503 when it does not; the queue and the model
are reported, not judged (see `checks`)."""

from webapp.health import bp, checks


@bp.route("/healthz", methods=["GET"])
def healthz():
    body = {"status": "ok", "database": "ok", **checks.queue_health(), "model": checks.model_health(),
            "rate_limits": checks.rate_limit_health()}
    if not checks.database_answers():
        return {**body, "status": "error", "database": "unreachable"}, 503
    return body, 200
