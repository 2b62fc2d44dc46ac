"""/api/v1/trash: the photos the caller deleted, waiting TRASH_DAYS before they go for good:
list them, restore one, delete one for good, or empty the Trash."""
from flask import Response, current_app, url_for

from webapp.analyses import sending, trash
from webapp.api import bp
from webapp.api.analyses import detail, owned
from webapp.api.openapi import operation
from webapp.api.schemas import AnalysisOut, EmptiedOut, TrashItemOut, TrashPage, TrashQuery
from webapp.api.security import api_user, authenticated
from webapp.errors import NotFound
from webapp.web.validation import query

TAG = "trash"


def _item(photo) -> dict:
    days = current_app.config["TRASH_DAYS"]
    return TrashItemOut.model_validate({
        "id": photo.public_id, "filename": photo.original_filename, "sha256": photo.sha256,
        "stored_bytes": photo.stored_bytes, "uploaded_at": photo.created_at, "trashed_at": photo.trashed_at,
        "purge_at": trash.purge_at(photo, days), "runs": len(photo.runs),
        "urls": {"thumbnail": url_for("api.trash_thumbnail", public_id=photo.public_id) if photo.thumbnail_path
                 else None,
                 "restore": url_for("api.restore", public_id=photo.public_id)},
    }).model_dump(mode="json")


@bp.route("/trash", methods=["GET"])
@authenticated
@operation(summary="The photos in your Trash, most recently deleted first", tag=TAG, query=TrashQuery,
           description="What DELETE /analyses/<id> moved there. Each waits TRASH_DAYS (30) days from `trashed_at` "
                       "(until `purge_at`), then it is deleted for good; until then it counts towards your quota.",
           responses={200: TrashPage, 401: None, 422: None})
def list_trash():
    user = api_user()
    photos = trash.in_trash(user, limit=query(TrashQuery).limit)
    return TrashPage.model_validate({"items": [_item(p) for p in photos], "total": user.trashed}).model_dump(
        mode="json")


@bp.route("/trash/<public_id>/restore", methods=["POST"])
@authenticated
@operation(summary="Restore a photo from the Trash", tag=TAG,
           description="Takes the photo's id, or the id of any of its runs. The photo is back in every listing, "
                       "showing its latest finished run; the answer is that run, as GET /analyses/<id> gives it.",
           responses={200: AnalysisOut, 401: None, 404: None})
def restore(public_id: str):
    user = api_user()
    photo = trash.trashed_photo(user, public_id)
    shown = trash.restore_one(user, photo)
    return detail(owned(shown, with_detections=True))


@bp.route("/trash/<public_id>", methods=["DELETE"])
@authenticated
@operation(summary="Delete a photo in the Trash for good", tag=TAG,
           description="Its files, runs, detections and images go now; 404 when it is not in the Trash.",
           responses={204: None, 401: None, 404: None})
def delete_for_good(public_id: str):
    user = api_user()
    photo = trash.trashed_photo(user, public_id)
    if not trash.delete_for_good(user, [photo.public_id]):
        raise NotFound(trash.NOT_IN_TRASH)
    return Response(status=204)


@bp.route("/trash", methods=["DELETE"])
@authenticated
@operation(summary="Empty the Trash: delete everything in it for good", tag=TAG,
           responses={200: EmptiedOut, 401: None})
def empty_trash():
    return EmptiedOut(deleted=trash.empty(api_user())).model_dump(mode="json")


@bp.route("/trash/<public_id>/thumbnail", methods=["GET"])
@authenticated
@operation(summary="The thumbnail of a photo in the Trash", tag=TAG,
           responses={200: {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}, 401: None, 404: None})
def trash_thumbnail(public_id: str):
    return sending.send_trashed_thumbnail(trash.trashed_photo(api_user(), public_id))
