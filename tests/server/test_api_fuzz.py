"""The API driven by its own OpenAPI schema (schemathesis): whatever the schema allows a
client to send, the real application over a real store answers without a server error."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from streamfit.jobs.manager import JobManager
from streamfit.server.app import create_app
from tests.server.conftest import BASE_URL, python_job

#: Examples per operation: a few seconds in all.
EXAMPLES = 12


def test_no_request_the_schema_allows_is_a_server_error(sqlite_manager: JobManager) -> None:
    # A few ended jobs (a followed log of an ended job ends at once), tagged for the filters.
    ids = sqlite_manager.submit([python_job(f"job-{i}", tags={"team": "ml"}) for i in range(3)])
    for job_id in ids.job_ids:
        sqlite_manager.stop(job_id)
    app = create_app(manager=sqlite_manager)
    host = {"host": "127.0.0.1"}
    with TestClient(app, base_url=BASE_URL):  # its lifespan, as a server runs it
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=host)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 12  # the jobs API and the tuning API
        for operation in operations:

            @given(operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            )
            def no_server_error(case: schemathesis.Case) -> None:
                answer = case.call(headers=host)
                assert answer.status_code < 500, (case.as_curl_command(), answer.text[:500])

            no_server_error()
