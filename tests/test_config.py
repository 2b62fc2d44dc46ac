import os
import re
import subprocess
import sys

import pytest
from flask_migrate import upgrade

from tests.helpers import ApiActions
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
    source = (BASE_DIR / "webapp" / "config.py").read_text()
    read = set(re.findall(r'(?:_env_\w+|os\.environ\.get)\(\s*"([A-Z_]+)"', source))
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    assert len(read) > 25 and read - listed == set()


def test_only_the_config_module_reads_the_environment():
    readers = [str(path.relative_to(BASE_DIR)) for path in (BASE_DIR / "webapp").rglob("*.py")
               if "os.environ" in path.read_text() or "getenv" in path.read_text()]
    assert readers == ["webapp/config.py"]


def config_from_environment(**env) -> dict:
    """Config's values as a fresh process reads them from these variables."""
    code = ("import json; from webapp.config import Config; "
            "print(json.dumps({k: getattr(Config, k) for k in dir(Config) if k.isupper()}, default=str))")
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True,
                            env={**os.environ, **env}, check=True)
    import json

    return json.loads(result.stdout)


def test_environment_lists_and_switches_are_parsed_once_into_config():
    config = config_from_environment(CORS_ORIGINS=" https://a.example, ,https://b.example ",
                                     SESSION_COOKIE_SECURE="0", TRUSTED_PROXIES="1", YOLO_OFFLINE="yes")
    assert config["CORS_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert config["SESSION_COOKIE_SECURE"] is False and config["TRUSTED_PROXIES"] == 1
    assert config["YOLO_OFFLINE"] is True
    assert config_from_environment(SESSION_COOKIE_SECURE="")["SESSION_COOKIE_SECURE"] is None


def login_cookie(tmp_path, **values) -> str:
    app = create_app(production_config(tmp_path, **values))
    with app.app_context():
        upgrade()
    api = ApiActions(app.test_client())
    api.signup()
    return api.login().headers["Set-Cookie"]


def test_the_refresh_cookie_is_secure_in_production(tmp_path):
    assert "Secure" in login_cookie(tmp_path)


def test_the_refresh_cookie_follows_session_cookie_secure_off(tmp_path):
    """A self-hosted server on plain HTTP (a LAN) with SESSION_COOKIE_SECURE=0 can still refresh."""
    cookie = login_cookie(tmp_path, SESSION_COOKIE_SECURE=False)
    assert cookie.startswith("refresh_token=") and "Secure" not in cookie
