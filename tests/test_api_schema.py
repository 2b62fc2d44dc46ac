"""Property-based run of the OpenAPI document against the app (schemathesis), authenticated:
no 5xx anywhere, and every response matches the status codes and schemas the document gives."""
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from tests.helpers import ApiActions
from tests.images import encode, sample

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_app(make_app):
    """An app with a user who has one finished analysis, and that user's bearer token."""
    app = make_app(RATELIMIT_AUTH="100000 per minute")
    api = ApiActions(app.test_client()).user("fuzz@example.com")
    response = api.upload(("photo.png", encode(sample(), "PNG")), query="?wait=true")
    assert response.status_code == 201
    return app, api.headers, response.json["analyses"][0]["id"]


def test_openapi_document_lists_every_api_route(api_app):
    app, _, _ = api_app
    document = app.test_client().get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    routes = {
        (re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi_json"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routes


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_holds_to_the_document(api_app, mode):
    """Each operation gets generated requests (valid ones, then invalid ones); half of those
    naming an analysis are pointed at the user's real one, so both 404s and 200s are covered."""
    app, headers, analysis_id = api_app
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    failures = []
    for operation in operations:

        @settings(max_examples=20, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            path_id = (case.path_parameters or {}).get("public_id")
            if path_id is not None and len(str(path_id)) % 2 == 0:
                case.path_parameters["public_id"] = analysis_id
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # report every operation's failure together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_every_reference_in_the_document_resolves(api_app):
    import json
    import re

    app, _, _ = api_app
    document = app.test_client().get("/api/v1/openapi.json").json
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"])
    assert "$defs" not in json.dumps(document)


@pytest.mark.parametrize("path, method", [("/api/v1/analyses", "post"), ("/api/v1/analyses/{public_id}/runs", "post")])
def test_swagger_fills_in_the_settings_the_server_uses_when_they_are_left_out(make_app, path, method):
    """"Try it out" sends what is filled in: the server's own defaults, not the schema's limits
    (conf=1, imgsz=32 found nothing)."""
    app = make_app(YOLO_CONF=0.3, YOLO_IOU=0.6, YOLO_IMGSZ=512)
    document = app.test_client().get("/api/v1/openapi.json").json
    fields = document["paths"][path][method]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert (fields["conf"]["example"], fields["iou"]["example"], fields["imgsz"]["example"]) == (0.3, 0.6, 512)
