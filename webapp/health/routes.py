from webapp.health import bp, checks


@bp.route("/healthz", methods=["GET"])
def healthz():
    body = {"status": "ok", "database": "ok", **checks.queue_health(), "model": checks.model_health()}
    if not checks.database_answers():
        return {**body, "status": "error", "database": "unreachable"}, 503
    return body, 200
