"""The upload form of the gallery page (the photos and, when there are several, the model)."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileRequired, MultipleFileField
from wtforms import SelectField
from wtforms.validators import ValidationError

from webapp.detection.registry import DEFAULT_NAME, UnknownModel, model_key, model_names


class UploadForm(FlaskForm):
    images = MultipleFileField("Photos", validators=[FileRequired(message="Choose at least one photo.")])
    # Shown only when YOLO_MODELS names more than the default model.
    model = SelectField("Model", default=DEFAULT_NAME, validate_choice=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.choices = [(name, name) for name in model_names()]

    def validate_model(self, field) -> None:
        try:
            model_key(field.data or None)
        except UnknownModel as exc:
            raise ValidationError(str(exc)) from None
