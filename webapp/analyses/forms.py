from flask_wtf import FlaskForm
from flask_wtf.file import FileRequired, MultipleFileField
from wtforms import SelectField
from wtforms.validators import ValidationError

from webapp import detection


class UploadForm(FlaskForm):
    images = MultipleFileField("Photos", validators=[FileRequired(message="Choose at least one photo.")])
    # Shown only when YOLO_MODELS names more than the default model.
    model = SelectField("Model", default=detection.DEFAULT_NAME, validate_choice=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.choices = [(name, name) for name in detection.model_names()]

    def validate_model(self, field) -> None:
        try:
            detection.check_model(field.data or None)
        except detection.UnknownModel as exc:
            raise ValidationError(str(exc)) from None
