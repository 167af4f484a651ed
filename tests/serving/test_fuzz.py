"""Whatever a client sends, the answer is a 200 or a 4xx with a JSON error: never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfit.serving import ServeSettings, create_app, load_served
from tests.serving.conftest import Models, csv_body, recordio_body, rows

TYPES = ["text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf"]


@pytest.fixture(scope="module")
def client(models: Models) -> Iterator[TestClient]:
    served = load_served([str(models.ll), str(models.kmeans)])
    settings_ = ServeSettings(batch_window_ms=1.0, max_body_bytes=1 << 16)
    with TestClient(create_app(served, settings_)) as c:
        yield c


def _mutated(data: st.DataObject) -> bytes:
    """A valid body of some type, then cut, spliced or with bytes flipped."""
    x = rows(data.draw(st.integers(1, 3)), data.draw(st.integers(0, 5)))
    valid = data.draw(
        st.sampled_from(
            [
                csv_body(x),
                recordio_body(x),
                json.dumps({"instances": x.tolist()}).encode(),
                b"".join(json.dumps({"features": r.tolist()}).encode() + b"\n" for r in x),
            ]
        )
    )
    cut = data.draw(st.integers(0, len(valid)))
    noise = data.draw(st.binary(max_size=16))
    where = data.draw(st.integers(0, cut))
    return valid[:where] + noise + valid[where:cut]


def _check(client: TestClient, path: str, body: bytes, content_type: str) -> None:
    answer = client.post(path, content=body, headers={"Content-Type": content_type})
    assert answer.status_code < 500, (body, content_type, answer.text)
    if answer.status_code != 200:
        assert isinstance(answer.json()["error"], str)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_bodies_are_answered_or_refused(client: TestClient, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(["/models/ll/invocations", "/models/kmeans/invocations"]))
    _check(client, path, _mutated(data), data.draw(st.sampled_from(TYPES)))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=200), content_type=st.sampled_from(TYPES))
def test_random_bytes_are_refused_as_4xx(
    client: TestClient, body: bytes, content_type: str
) -> None:
    _check(client, "/models/ll/invocations", body, content_type)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(
                st.sampled_from(
                    ["instances", "features", "indices", "values", "data", "text", "x"]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_is_answered_or_refused(client: TestClient, doc: object) -> None:
    _check(client, "/models/ll/invocations", json.dumps(doc).encode(), "application/json")
