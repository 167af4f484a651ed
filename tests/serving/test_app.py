"""The model server's routes, over real trained models, through FastAPI's TestClient."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from streamfit.serving import ServeSettings, create_app, load_served
from streamfit.training.inference import predict
from tests.serving.conftest import Models, csv_body, expected, recordio_body, rows

JSON = "application/json"
JSONL = "application/jsonlines"
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"


def test_ping_answers_once_the_models_are_loaded(client: TestClient) -> None:
    answer = client.get("/ping")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "models": ["ll"]}


def _bodies(x: object) -> dict[str, bytes]:
    import numpy as np

    assert isinstance(x, np.ndarray)
    lines = b"".join(json.dumps({"features": r.tolist()}).encode() + b"\n" for r in x)
    return {
        CSV: csv_body(x),
        JSON: json.dumps({"instances": [{"features": r.tolist()} for r in x]}).encode(),
        JSONL: lines,
        RECORDIO: recordio_body(x),
    }


@pytest.mark.parametrize("content_type", [CSV, JSON, JSONL, RECORDIO])
def test_every_content_type_answers_as_predict_does(
    client: TestClient, models: Models, tmp_path: Path, content_type: str
) -> None:
    x = rows(5)
    answer = client.post(
        "/invocations", content=_bodies(x)[content_type], headers={"Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == JSON
    assert answer.json() == {"predictions": expected(models.ll, x, tmp_path)}


@pytest.mark.parametrize(
    "instances",
    [
        [[0.5, 1.0, -1.0, 2.0], [0.0, 0.0, 1.0, 1.0]],
        [{"data": {"features": {"values": [0.5, 1.0, -1.0, 2.0]}}}, [0.0, 0.0, 1.0, 1.0]],
    ],
)
def test_json_takes_sagemakers_instance_forms(
    client: TestClient, models: Models, tmp_path: Path, instances: list[object]
) -> None:
    import numpy as np

    x = np.array([[0.5, 1.0, -1.0, 2.0], [0.0, 0.0, 1.0, 1.0]], dtype=np.float32)
    answer = client.post("/invocations", json={"instances": instances})
    assert answer.json() == {"predictions": expected(models.ll, x, tmp_path)}
    one = client.post("/invocations", json={"features": x[0].tolist()})  # one bare instance
    assert one.json() == {"predictions": expected(models.ll, x[:1], tmp_path)}


def test_sparse_recordio_rows_answer_as_their_dense_form(client: TestClient) -> None:
    import numpy as np

    from streamfit.data.chunk import sparse_record_batch
    from streamfit.data.writers import write

    x = np.array([[0.0, 2.0, 0.0, -1.0], [1.5, 0.0, 0.0, 0.0]], dtype=np.float32)
    out = io.BytesIO()
    indptr = np.array([0, 2, 3])
    write("recordio", [sparse_record_batch(indptr, [1, 3, 0], [2.0, -1.0, 1.5], None)], out, 4)
    sparse = client.post("/invocations", content=out.getvalue(), headers={"Content-Type": RECORDIO})
    dense = client.post("/invocations", content=csv_body(x), headers={"Content-Type": CSV})
    assert sparse.status_code == 200, sparse.text
    assert sparse.json() == dense.json()


def _predict_file(model: Path, x: object, accept: str, tmp_path: Path) -> bytes:
    import numpy as np

    assert isinstance(x, np.ndarray)
    path = tmp_path / "rows.csv"
    path.write_bytes(csv_body(x))
    out = io.BytesIO()
    predict(model, str(path), out, accept=accept)
    return out.getvalue()


@pytest.mark.parametrize(
    ("accept", "answer_type", "fmt"),
    [
        (JSONL, JSONL, "jsonl"),
        (CSV, CSV, "csv"),
        ("text/*", CSV, "csv"),
        ("text/csv;q=0.4, application/jsonlines;q=0.9", JSONL, "jsonl"),
    ],
)
def test_accept_chooses_what_predict_writes(
    client: TestClient, models: Models, tmp_path: Path, accept: str, answer_type: str, fmt: str
) -> None:
    x = rows(3, seed=4)
    answer = client.post(
        "/invocations", content=csv_body(x), headers={"Content-Type": CSV, "Accept": accept}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].split(";")[0] == answer_type
    assert answer.content == _predict_file(models.ll, x, fmt, tmp_path)


@pytest.mark.parametrize("accept", [None, "*/*", "application/*", JSON])
def test_json_is_the_default_answer(client: TestClient, accept: str | None) -> None:
    headers = {"Content-Type": CSV} | ({"Accept": accept} if accept else {})
    answer = client.post("/invocations", content=b"1,2,3,4\n", headers=headers)
    assert answer.headers["content-type"] == JSON
    assert len(answer.json()["predictions"]) == 1


def test_each_model_answers_under_its_name(
    multi: TestClient, models: Models, tmp_path: Path
) -> None:
    x = rows(4, seed=2)
    for name, folder in (("ll", models.ll), ("clusters", models.kmeans), ("pca", models.pca)):
        answer = multi.post(
            f"/models/{name}/invocations", content=csv_body(x), headers={"Content-Type": CSV}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": expected(folder, x, tmp_path)}
    listed = multi.get("/models").json()["models"]
    assert [(m["name"], m["algorithm"]) for m in listed] == [
        ("ll", "linear-learner"),
        ("clusters", "kmeans"),
        ("pca", "pca"),
    ]


def test_one_model_is_also_served_under_its_name(client: TestClient) -> None:
    headers = {"Content-Type": CSV}
    by_name = client.post("/models/ll/invocations", content=b"1,2,3,4\n", headers=headers)
    multi_model = client.post("/models/ll/invoke", content=b"1,2,3,4\n", headers=headers)
    plain = client.post("/invocations", content=b"1,2,3,4\n", headers=headers)
    assert by_name.json() == plain.json() == multi_model.json()


def test_several_models_need_a_name(multi: TestClient) -> None:
    answer = multi.post("/invocations", content=b"1,2,3,4\n", headers={"Content-Type": CSV})
    assert answer.status_code == 400
    assert "/models/NAME/invocations (ll, clusters, pca)" in answer.json()["error"]
    unknown = multi.post("/models/nope/invocations", content=b"1,2,3,4\n")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "no model named 'nope' (served: ll, clusters, pca)"}


BAD_REQUESTS = [
    # (content type, body, accept, status, in the message, row, field)
    (
        "application/x-parquet",
        b"PAR1",
        None,
        415,
        "'application/x-parquet' is not read",
        None,
        None,
    ),
    (None, b"1,2,3,4\n", None, 415, "a Content-Type header is required", None, None),
    (CSV, b"1,2,3,4\n1,2,x,4\n", None, 400, "request body, line 2, column 3", 2, "column 3"),
    (CSV, b"1,2,3,4\n1,2,3\n", None, 400, "3 fields where the data has 4", 2, None),
    (
        JSONL,
        b'{"features": [1, 2, 3, 4]}\n{"features": [1, 2]}\n',
        None,
        400,
        "line 2, features: 2 features where the data has 4",
        2,
        "features",
    ),
    (
        JSON,
        b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}',
        None,
        400,
        "request body, instance 2, features: 5 features",
        2,
        "features",
    ),
    (JSON, b'{"instances": [1, 2', None, 400, "not valid JSON", None, None),
    (JSON, b'{"instances": 5}', None, 400, "'instances' must be a list", None, None),
    (JSON, b"\xff\xfe\x00", None, 400, "not valid JSON", None, None),
    (JSONL, b"not json\n", None, 400, "line 1: not valid JSON", 1, None),
    (RECORDIO, b"garbage", None, 400, "record 1: truncated record", 1, None),
    (CSV, b"", None, 400, "no rows to predict", None, None),
    (CSV, b"1,2,3,4\n", "application/xml", 406, "no answer type fits", None, None),
]


@pytest.mark.parametrize(
    ("content_type", "body", "accept", "status", "message", "row", "field"), BAD_REQUESTS
)
def test_a_bad_request_is_a_4xx_naming_row_and_field(
    client: TestClient,
    content_type: str | None,
    body: bytes,
    accept: str | None,
    status: int,
    message: str,
    row: int | None,
    field: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    answer = client.post("/invocations", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert message in error["error"]
    assert error.get("row") == row
    assert error.get("field") == field
    assert client.get("/ping").status_code == 200  # the server goes on


def test_bodies_and_row_counts_over_the_limits_are_refused(models: Models) -> None:
    settings = ServeSettings(max_body_bytes=64, max_request_rows=2)
    with TestClient(create_app(load_served([str(models.ll)]), settings)) as c:
        big = c.post("/invocations", content=b"1,2,3,4\n" * 9, headers={"Content-Type": CSV})
        assert big.status_code == 413
        assert "larger than the server's limit of 64 bytes" in big.json()["error"]

        def chunked() -> object:  # no Content-Length: counted as it arrives
            yield b"1,2,3,4\n" * 5
            yield b"1,2,3,4\n" * 5

        streamed = c.post("/invocations", content=chunked(), headers={"Content-Type": CSV})
        assert streamed.status_code == 413
        many = c.post("/invocations", content=b"1,2,3,4\n" * 3, headers={"Content-Type": CSV})
        assert many.status_code == 413
        assert "more than 2 rows" in many.json()["error"]
        assert (
            c.post(
                "/invocations", content=b"1,2,3,4\n" * 2, headers={"Content-Type": CSV}
            ).status_code
            == 200
        )


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    wrong = client.get("/invocations")
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "Method Not Allowed"}


def test_without_batching_answers_are_the_same(models: Models, tmp_path: Path) -> None:
    x = rows(3, seed=9)
    settings = ServeSettings(batch_window_ms=0)
    with TestClient(create_app(load_served([str(models.kmeans)]), settings)) as c:
        answer = c.post("/invocations", content=csv_body(x), headers={"Content-Type": CSV})
        assert answer.json() == {"predictions": expected(models.kmeans, x, tmp_path)}
        assert 'streamfit_serving_batch_rows_sum{model="kmeans"} 3.0' in c.get("/metrics").text


def test_metrics_count_requests_latency_and_batch_rows(client: TestClient) -> None:
    headers = {"Content-Type": CSV}
    client.post("/invocations", content=b"1,2,3,4\n0,0,0,0\n", headers=headers)
    client.post("/invocations", content=b"1,2,3,4\n", headers=headers)
    client.post("/invocations", content=b"1,2,3,4\n", headers={"Content-Type": "text/xml"})
    client.post("/models/other/invocations", content=b"1,2,3,4\n", headers=headers)
    text = client.get("/metrics").text
    assert 'streamfit_serving_requests_total{model="ll",status="200"} 2.0' in text
    assert 'streamfit_serving_requests_total{model="ll",status="415"} 1.0' in text
    assert 'streamfit_serving_requests_total{model="-",status="404"} 1.0' in text
    assert 'streamfit_serving_request_seconds_count{model="ll"} 3.0' in text
    assert 'streamfit_serving_batch_rows_sum{model="ll"} 3.0' in text


@pytest.mark.parametrize("window", [2.0, 0.0])
def test_a_model_that_fails_is_a_500_and_the_server_goes_on(models: Models, window: float) -> None:
    served = load_served([str(models.ll)])
    tensors = dict(served[0].model.tensors)
    with TestClient(create_app(served, ServeSettings(batch_window_ms=window))) as c:
        served[0].model.tensors.clear()  # a model that cannot predict: a bug, no request's fault
        failed = c.post("/invocations", content=b"1,2,3,4\n", headers={"Content-Type": CSV})
        assert failed.status_code == 500
        assert failed.json() == {"error": "internal error: see the server's log"}
        served[0].model.tensors.update(tensors)
        again = c.post("/invocations", content=b"1,2,3,4\n", headers={"Content-Type": CSV})
        assert again.status_code == 200


def _frames(data: bytes) -> list[bytes]:
    """The payloads of a RecordIO stream."""
    import struct

    out, at = [], 0
    while at < len(data):
        magic, length = struct.unpack_from("<II", data, at)
        assert magic == 0xCED7230A
        out.append(data[at + 8 : at + 8 + length])
        at += 8 + length + (-length & 3)
    return out


def test_recordio_answers_are_what_the_sagemaker_sdk_reads(multi: TestClient) -> None:
    import numpy as np

    from tests.data.test_recordio import record_class

    Record = record_class()
    x = rows(3, seed=6)
    for name in ("ll", "clusters", "pca"):
        path = f"/models/{name}/invocations"
        headers = {"Content-Type": RECORDIO}
        as_json = multi.post(path, content=recordio_body(x), headers=headers).json()
        answer = multi.post(path, content=recordio_body(x), headers=headers | {"Accept": RECORDIO})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == RECORDIO
        frames = _frames(answer.content)
        assert len(frames) == 3
        for frame, want in zip(frames, as_json["predictions"], strict=True):
            record = Record.FromString(frame)
            assert not record.features
            assert sorted(record.label) == sorted(want)
            for key, value in want.items():
                got = list(record.label[key].float32_tensor.values)
                expected_values = np.asarray(value, dtype=np.float32).ravel()
                assert got == pytest.approx(expected_values.tolist())
