import re

import pytest

from webapp import create_app
from webapp.config import BASE_DIR, TestConfig


def production_config(tmp_path, **values):
    base = {"TESTING": False, "DEBUG": False, "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    return type("ProdConfig", (TestConfig,), {**base, **values})


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_to_start_without_a_secret(tmp_path, missing):
    with pytest.raises(SystemExit, match=f"{missing} is not set"):
        create_app(production_config(tmp_path, **{missing: None}))


def test_production_starts_with_both_secrets(tmp_path):
    app = create_app(production_config(tmp_path))
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_development_generates_secrets_once_and_keeps_them(tmp_path):
    config = production_config(tmp_path, DEBUG=True, SECRET_KEY=None, JWT_SECRET_KEY=None)
    first = create_app(config)
    second = create_app(config)
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["JWT_SECRET_KEY"] == second.config["JWT_SECRET_KEY"]
    assert first.config["SECRET_KEY"] != first.config["JWT_SECRET_KEY"]
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0


def test_defaults_keep_database_and_uploads_in_the_instance_folder(tmp_path):
    app = create_app(production_config(tmp_path, SQLALCHEMY_DATABASE_URI=None, UPLOAD_DIR=None))
    instance = tmp_path / "instance"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'webapp.sqlite3'}"
    assert app.config["UPLOAD_DIR"] == str(instance / "uploads")


def test_env_example_lists_every_variable_the_config_reads():
    source = (BASE_DIR / "webapp" / "config.py").read_text() + (BASE_DIR / "webapp" / "settings.py").read_text()
    read = set(re.findall(r'(?:_env_int|_env_float|os\.environ\.get)\(\s*"([A-Z_]+)"', source))
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    assert read - listed == set()
