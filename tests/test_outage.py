"""A database outage is a 503 with the app's own page or problem document, signed in or not,
never a bare "Internal Server Error"."""
import pytest

from tests.helpers import ApiActions
from webapp.extensions import db


@pytest.fixture
def database_down(app, monkeypatch):
    """Every new connection fails, as when the database server is stopped."""
    def take_down():
        with app.app_context():
            engine = db.engine
            engine.dispose()
            error = engine.dialect.loaded_dbapi.OperationalError

            def refuse(*args, **kwargs):
                raise error("could not connect to server: Connection refused")

            monkeypatch.setattr(engine.dialect, "connect", refuse)
    return take_down


@pytest.mark.parametrize("url", ["/analyses", "/login", "/"])
def test_a_signed_in_page_during_an_outage_is_the_app_s_503_page(client, auth, database_down, url):
    auth.signup()
    database_down()
    response = client.get(url)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "The database cannot be reached" in page and "<html" in page
    assert response.headers["Retry-After"]


def test_an_api_request_during_an_outage_is_a_503_problem(client, database_down):
    api = ApiActions(client).user()
    database_down()
    response = api.get("/api/v1/analyses")
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert response.json["detail"].startswith("The database cannot be reached")


def test_healthz_during_an_outage_says_the_database_is_unreachable(client, database_down):
    database_down()
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["database"] == "unreachable"
