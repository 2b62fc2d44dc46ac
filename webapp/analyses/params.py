"""The settings of a run (conf, iou, imgsz, classes, model): one schema for the fields an upload,
a re-run form and the API send, and the values a run is made with."""
from dataclasses import dataclass
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webapp.detection.registry import model_key


@dataclass(frozen=True)
class DetectionParams:
    """Per-run detection settings; None means the configured default."""

    conf: Optional[float] = None
    iou: Optional[float] = None
    imgsz: Optional[int] = None
    classes: Optional[tuple[str, ...]] = None
    model: Optional[str] = None  # a YOLO_MODELS name (checked); None: the default


class RunFields(BaseModel):
    """Optional form fields beside the files (an upload) or alone (a re-run)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    conf: Optional[float] = Field(None, ge=0, le=1, description="Confidence to draw and count at.")
    iou: Optional[float] = Field(None, ge=0, le=1, description="NMS IoU threshold.")
    imgsz: Optional[int] = Field(None, ge=32, le=2048, description="Inference size in pixels.")
    classes: Optional[list[str]] = Field(
        None, description="Only detect these class names (repeat the field or separate by commas)."
    )
    model: Optional[str] = Field(
        None, max_length=32, description="Which model (a name from `GET /api/v1/models`); the default when left out.",
        json_schema_extra={"example": "default"},  # what Swagger UI's "Try it out" fills in (not "string")
    )

    @field_validator("classes", mode="before")
    @classmethod
    def split_commas(cls, value):
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            names = [n.strip() for item in value for n in str(item).split(",") if n.strip()]
            return list(dict.fromkeys(names)) or None  # each once, in the order given
        return value

    def params(self) -> DetectionParams:
        """The run's settings, its model checked (raises UnknownModel)."""
        return DetectionParams(self.conf, self.iou, self.imgsz, tuple(self.classes) if self.classes else None,
                               model_key(self.model))
