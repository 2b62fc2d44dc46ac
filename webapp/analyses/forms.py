from flask_wtf import FlaskForm
from flask_wtf.file import FileRequired, MultipleFileField


class UploadForm(FlaskForm):
    images = MultipleFileField("Photos", validators=[FileRequired(message="Choose at least one photo.")])
