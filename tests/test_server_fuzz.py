"""Property-based fuzzing of the demo server against its own OpenAPI schema (in-process ASGI, no network):
no 5xx, and every response conforms to the schema (status code, content type, headers, body)."""

from __future__ import annotations

import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")
pytest.importorskip("fastapi", reason="FastAPI is the [serve] extra")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the [dev] extra")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from test_server import make_predictor, make_videos  # noqa: E402

from momentloc.server.app import create_app  # noqa: E402

OPERATIONS = [("GET", "/api/health"), ("GET", "/api/videos"), ("POST", "/api/localize"), ("POST", "/api/upload"),
              ("GET", "/videos/{name}")]


# Schema-valid requests may still be refused with a documented ErrorOut: a file type known by its name only, a
# name that would leave the folder, a query with no known word, an upload past the cap. A 422 for a schema-valid
# request stays a failure: it would mean the schema promises more than the server accepts.
CONFIG = {"checks": {"positive_data_acceptance": {"expected-statuses": ["2XX", "400", "404", "413"]}}}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    """The schema as the app serves it, bound to the app itself: requests never leave the process."""
    root = make_videos(tmp_path_factory.mktemp("fuzz") / "videos")
    app = create_app(make_predictor(), root, max_upload_mb=0.25, request_timeout_s=20.0)
    config = schemathesis.Config.from_dict(CONFIG)
    return schemathesis.openapi.from_asgi("/api/openapi.json", app, config=config)


def test_the_schema_lists_every_operation(api_schema) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


# Negative data (outside the schema) exists only where a request carries a body.
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST"]


@pytest.mark.parametrize("method, path, mode", CASES)
def test_operation_conforms_to_its_schema(api_schema, method: str, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path][method]

    # Bounded: a few dozen cases per operation and mode, reproducible (derandomize), whole file well under a minute.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call_and_validate()
        assert response.status_code < 500, response.text

    check()


@pytest.mark.parametrize("name", ["colours.webm", "sub/short.webm"])
def test_served_files_conform_to_the_schema(api_schema, name: str) -> None:
    """Random names never hit a file; these do, so the video response (type, headers) is checked too."""
    operation = api_schema["/videos/{name}"]["GET"]

    @given(case=operation.as_strategy(path_parameters={"name": name}))
    @settings(max_examples=3, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call_and_validate()
        assert response.status_code == 200 and response.headers["content-type"][0].startswith("video/")

    check()
