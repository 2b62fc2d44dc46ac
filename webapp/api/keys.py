"""/api/v1/keys: the caller's API keys (a login is needed to manage them, not a key)."""
from webapp.api import bp
from webapp.api.openapi import operation
from webapp.api.schemas import KeyIn, KeyList, KeyOut, NewKeyOut
from webapp.api.security import api_user, authenticated
from webapp.auth import keys
from webapp.web.answers import ProblemError
from webapp.web.validation import json_body

TAG = "keys"


def key_out(row, model=KeyOut, **extra) -> dict:
    return model(id=row.id, name=row.name, prefix=row.prefix, scope=row.scope, save_to_gallery=row.save_to_gallery,
                 created_at=row.created_at, last_used_at=row.last_used_at, **extra).model_dump(mode="json")


@bp.route("/keys", methods=["POST"])
@authenticated(api_keys=False)
@operation(summary="Create an API key (its secret is in this answer only)", tag=TAG, body=KeyIn,
           responses={201: NewKeyOut, 401: None, 403: None, 409: None, 422: None})
def create_key():
    data = json_body(KeyIn)
    try:
        key, raw = keys.create(api_user(), data.name, data.scope, data.save_to_gallery)
    except keys.TooManyKeys as exc:
        raise ProblemError(409, str(exc)) from None
    return key_out(key, NewKeyOut, key=raw), 201, {"Cache-Control": "private, no-store"}  # the secret: never kept


@bp.route("/keys", methods=["GET"])
@authenticated(api_keys=False)
@operation(summary="Your API keys (never their secrets)", tag=TAG, responses={200: KeyList, 401: None, 403: None})
def list_keys():
    return {"keys": [key_out(k) for k in keys.list_keys(api_user())]}


@bp.route("/keys/<int:key_id>", methods=["DELETE"])
@authenticated(api_keys=False)
@operation(summary="Revoke an API key: it stops working at once", tag=TAG,
           responses={204: None, 401: None, 403: None, 404: None})
def revoke_key(key_id: int):
    if not keys.revoke(api_user(), key_id):
        raise ProblemError(404, "No such API key (it may have been revoked already).")
    return "", 204
