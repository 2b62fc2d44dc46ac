"""The API's contracts: Pydantic models that validate requests and describe responses.
The OpenAPI document (`/api/v1/openapi.json`) is generated from these same classes."""
from datetime import datetime
from enum import StrEnum
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from webapp.analyses.listing import MAX_PAGE, FilterFields
from webapp.auth.accounts import EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, normalize_email
from webapp.models import RunStatus

# The API's name for a run's status (`RunStatus` in the code): the OpenAPI document's schema.
AnalysisStatus = StrEnum("AnalysisStatus", {status.name: status.value for status in RunStatus})
AnalysisStatus.__doc__ = "Where an analysis is: queued, running, finished with results, or stopped with a reason."

ExportFormat = Literal["json", "coco", "yolo", "csv"]
Variant = Literal["original", "display", "annotated", "thumbnail", "annotated-thumbnail"]


class Schema(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---- requests ----

class SignupIn(Schema):
    email: EmailStr = Field(max_length=EMAIL_MAX_LENGTH)
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    invite: Optional[str] = Field(None, max_length=400, description=(
        "The token of an invitation (the `invite` of its link), where SIGNUP is `invite`."))

    _normalize_email = field_validator("email", mode="before")(normalize_email)


class LoginIn(Schema):
    email: str = Field(min_length=1, max_length=EMAIL_MAX_LENGTH)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)

    _normalize_email = field_validator("email", mode="before")(normalize_email)


class UploadQuery(Schema):
    wait: bool = Field(False, description="Answer 201 once every analysis has finished.")


class ListQuery(FilterFields):
    cursor: Optional[str] = Field(None, max_length=200, description="Where to go on: a page's `next` carries it.")
    page: int = Field(1, ge=1, le=MAX_PAGE + 1, description="Compatibility alias; `cursor` pages any depth.")
    per_page: int = Field(20, ge=1, le=100)
    status: Optional[AnalysisStatus] = None


class DetailQuery(Schema):
    min_conf: Optional[float] = Field(
        None, ge=0, le=1, description="Only detections at or above this (default: the analysis's conf)."
    )


class DeleteQuery(Schema):
    permanent: bool = Field(False, description=(
        "Delete the photo for good at once (its files and results go now) instead of moving it to the Trash, "
        "where it waits TRASH_DAYS (30) days and can be restored."))


class ImageQuery(Schema):
    variant: Variant = "annotated"


class ExportQuery(Schema):
    format: ExportFormat = "json"
    min_conf: Optional[float] = Field(None, ge=0, le=1, description=(
        "Export the detections at or above this confidence. Not given: each analysis's own threshold "
        "(its `conf`, 0.25 unless set at upload), i.e. the boxes its page shows. `min_conf=0`: everything "
        "stored (down to the server's YOLO_STORE_FLOOR), as an evaluation (mAP) needs."))
    location: bool = Field(False, description=(
        "Include each photo's GPS position (from its EXIF), where it has one. Left out unless asked: "
        "an export may leave your account."))


class BulkExportQuery(ExportQuery, FilterFields):
    status: AnalysisStatus = AnalysisStatus.DONE


# ---- responses ----

class UsageOut(Schema):
    photos: int = Field(description="Photos kept, those in the Trash included")
    trashed: int = Field(0, description="How many of them are in the Trash (they count until it is emptied)")
    stored_bytes: int = Field(description="Bytes they take on disk (originals and thumbnails)")
    quota_photos: int = Field(description="The most photos this account may keep (0: no limit)")
    quota_bytes: int = Field(description="The most bytes they may take (0: no limit)")
    files_per_upload: int = Field(description="The most files one upload may send (0: no limit)")


KeyScope = Literal["full", "detect-only"]


class KeyIn(Schema):
    name: str = Field(min_length=1, max_length=100, description="What the key is for, e.g. \"garage camera\"")
    scope: KeyScope = Field("full", description="`full`: anything you may do; `detect-only`: only detection")
    save_to_gallery: bool = Field(False, description="The DeepStack endpoint keeps each call in your gallery")

    @field_validator("name")
    @classmethod
    def printable_name(cls, value: str) -> str:
        if not value.strip() or any(not ch.isprintable() for ch in value):
            raise ValueError("Give the key a name of printable characters.")
        return value.strip()


class KeyOut(Schema):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell it apart")
    scope: KeyScope
    save_to_gallery: bool
    created_at: datetime
    last_used_at: Optional[datetime] = Field(None, description="Updated at most once a minute")


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret: shown this once, never again")


class KeyList(Schema):
    keys: list[KeyOut]


class UserOut(Schema):
    id: int
    email: str
    created_at: datetime
    usage: UsageOut


class TokenOut(Schema):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class BoxOut(Schema):
    x1: float
    y1: float
    x2: float
    y2: float


class DetectionOut(Schema):
    name: str
    class_: int = Field(alias="class", serialization_alias="class")
    confidence: float
    box: BoxOut


class ModelOut(Schema):
    name: str
    key: str = Field(description="The configured model it ran with (`default`, or a name from /models).")
    conf: float
    iou: float
    imgsz: int
    classes: Optional[list[str]]


class TimingsOut(Schema):
    preprocess_ms: Optional[float]
    inference_ms: Optional[float]
    postprocess_ms: Optional[float]
    total_ms: Optional[float]


class UrlsOut(Schema):
    self: str
    original: str = Field(description="The photo exactly as uploaded (its metadata included).")
    display: str = Field(description="What pages show of it: upright, in a format browsers show.")
    annotated: Optional[str] = Field(description="The boxes drawn on the photo (drawn when first asked for).")
    thumbnail: Optional[str]
    annotated_thumbnail: Optional[str] = Field(None, description="The boxes drawn on the thumbnail (once done).")
    export: str


class CameraOut(Schema):
    make: Optional[str]
    model: Optional[str]


TAKEN_AT = ("When it was taken: the camera's date (ISO 8601 with its offset from UTC where the camera "
            "wrote one, else local time as written, without an offset); without one, the upload time (UTC).")


class PhotoOut(Schema):
    id: str = Field(description="The photo's own id (every run of it has its own analysis id).")
    created_at: datetime = Field(description="When it was uploaded (the same as uploaded_at).")
    uploaded_at: datetime = Field(description="When it was uploaded.")
    taken_at: str = Field(description=TAKEN_AT)
    taken_from: Literal["exif", "upload"] = Field(description="Where taken_at comes from.")
    camera: Optional[CameraOut] = Field(description="The camera's make and model, from its EXIF.")
    has_location: bool = Field(description="Whether its EXIF has a GPS position (kept for you; never shared).")
    runs: int = Field(description="How many runs it has (GET .../runs lists them).")


class AnalysisSummary(Schema):
    id: str = Field(description="This run's id: what every /analyses/<id> route takes.")
    status: AnalysisStatus
    error: Optional[str]
    filename: str
    width: int
    height: int
    sha256: str
    labels: dict[str, int] = Field(description="Detections at the analysis's conf, by label.")
    created_at: datetime = Field(description="When the photo was uploaded (queued_at: when this run was asked for).")
    uploaded_at: datetime = Field(description="When the photo was uploaded.")
    taken_at: str = Field(description=TAKEN_AT)
    finished_at: Optional[datetime]
    urls: UrlsOut
    queued_at: datetime
    shown: bool = Field(description="Whether this is the run the gallery (and the list) shows for its photo.")
    photo: PhotoOut


class RunsOut(Schema):
    runs: list[AnalysisSummary] = Field(description="Every run of the photo, newest first.")


class AnalysisOut(AnalysisSummary):
    model: ModelOut
    timings: TimingsOut
    device: Optional[str]
    started_at: Optional[datetime]
    detections: list[DetectionOut]


class AnalysisPage(Schema):
    items: list[AnalysisSummary]
    total: Optional[int] = Field(description="How many match; null where no kept count says so cheaply "
                                             "(status, date or several-label filters).")
    page: int
    per_page: int
    pages: Optional[int] = Field(description="Pages of per_page, where `total` is known.")
    next: Optional[str] = Field(description="URL of the next page (it carries a `cursor`), null on the last.")


class RejectedFile(Schema):
    filename: str
    reason: str


class UploadOut(Schema):
    analyses: list[AnalysisOut]
    rejected: list[RejectedFile]


class Problem(Schema):
    """RFC 9457 problem details: the shape of every API error."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: Optional[list[dict]] = Field(None, description="Field errors, on 422.")
    rejected: Optional[list[RejectedFile]] = Field(None, description="Refused files, on an upload.")


class ModelInfoOut(Schema):
    name: str = Field(description="What uploads pass as `model`.")
    model: str = Field(description="The model's file name.")
    default: bool
    available: bool
    reason: Optional[str] = Field(None, description="Why it cannot be used now, when it cannot.")
    classes: Optional[dict[str, str]] = Field(
        None, description="Class names by id; null while unknown (a Celery worker has not loaded it yet).")


class ModelsOut(Schema):
    models: list[ModelInfoOut]


class TrashUrlsOut(Schema):
    thumbnail: Optional[str] = Field(description="Its thumbnail, while it is in the Trash.")
    restore: str = Field(description="POST here to restore it.")


class TrashItemOut(Schema):
    id: str = Field(description="The photo's own id (restore and DELETE take it, or the id of any of its runs).")
    filename: str
    sha256: str
    stored_bytes: int = Field(description="Bytes it keeps on disk: still counted by your quota while in the Trash.")
    uploaded_at: datetime
    trashed_at: datetime = Field(description="When it was deleted (moved to the Trash).")
    purge_at: datetime = Field(description="When it is deleted for good unless restored.")
    runs: int = Field(description="How many runs it has; restoring shows its latest finished one again.")
    urls: TrashUrlsOut


class TrashPage(Schema):
    items: list[TrashItemOut] = Field(description="Most recently deleted first (at most `limit`).")
    total: int = Field(description="How many photos are in the Trash.")


class TrashQuery(Schema):
    limit: int = Field(100, ge=1, le=1000, description="At most this many items, the most recently deleted.")


class EmptiedOut(Schema):
    deleted: int = Field(description="How many photos were deleted for good.")
