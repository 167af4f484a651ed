"""A DeepAR model served: SageMaker's DeepAR requests, each under its own configuration."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from streamfit import train
from streamfit.serving import create_app, load_served
from streamfit.training.inference import predict_records

SERIES = [
    {"start": "2021-01-01", "target": [10.0, 12.5, 11.0, 9.5, 10.5, 13.0, 12.0, 10.0, 9.0]},
    {"start": "2021-03-01", "target": [5.0, 6.0, "NaN", 7.5, 6.5, 5.5, 6.0, 7.0]},
]
CONFIG = {"num_samples": 20, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.9"]}


@pytest.fixture(scope="module")
def deepar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deepar")
    rng = random.Random(0)
    with (root / "train.jsonl").open("w") as f:
        for i in range(20):
            y = [round(10 + 3 * math.sin(t / 2 + i) + rng.gauss(0, 0.3), 2) for t in range(30)]
            f.write(json.dumps({"start": "2020-01-01", "target": y}) + "\n")
    hp = {"time_freq": "M", "prediction_length": 3, "context_length": 6, "epochs": 1}
    hp |= {"num_cells": 8, "num_layers": 1}
    train(
        "deepar", str(root / "train.jsonl"), hyperparameters=hp, output=root / "job", progress=False
    )
    return root / "job" / "model"


@pytest.fixture
def client(deepar: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_served([str(deepar)]))) as c:
        yield c


def _expected(model: Path, tmp_path: Path, config: dict[str, object] | None) -> list[object]:
    path = tmp_path / "series.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in SERIES))
    return list(predict_records(model, str(path), inference_config=config))


def test_json_answers_under_the_requests_configuration(
    client: TestClient, deepar: Path, tmp_path: Path
) -> None:
    answer = client.post("/invocations", json={"instances": SERIES, "configuration": CONFIG})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert predictions == _expected(deepar, tmp_path, CONFIG)
    assert sorted(predictions[0]) == ["mean", "quantiles"]
    assert sorted(predictions[0]["quantiles"]) == ["0.1", "0.9"]
    assert len(predictions[0]["mean"]) == 3


def test_json_lines_answer_under_the_servers_configuration(
    client: TestClient, deepar: Path, tmp_path: Path
) -> None:
    lines = "".join(json.dumps(s) + "\n" for s in SERIES).encode()
    answer = client.post(
        "/invocations",
        content=lines,
        headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    assert answer.status_code == 200, answer.text
    got = [json.loads(line) for line in answer.text.splitlines()]
    assert got == _expected(deepar, tmp_path, None)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (
            json.dumps({"instances": SERIES, "configuration": {"num_samples": 0}}),
            None,
            400,
            "num_samples",
        ),
        (
            json.dumps({"instances": SERIES, "configuration": [1]}),
            None,
            400,
            "'configuration' must",
        ),
        (json.dumps({"instances": [SERIES[0], {"start": "2021-01-01"}]}), None, 400, "instance 2"),
        ("1,2,3\n", "text/csv", 415, "a forecaster reads series records"),
        (json.dumps({"instances": []}), None, 400, "no series to forecast"),
    ],
)
def test_a_bad_forecast_request_is_a_4xx(
    client: TestClient, body: str, content_type: str | None, status: int, message: str
) -> None:
    headers = {"Content-Type": content_type or "application/json"}
    answer = client.post("/invocations", content=body.encode(), headers=headers)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert client.get("/ping").status_code == 200


def test_forecasts_have_no_recordio_answer(client: TestClient) -> None:
    answer = client.post(
        "/invocations",
        json={"instances": SERIES},
        headers={"Accept": "application/x-recordio-protobuf"},
    )
    assert answer.status_code == 406
    assert "application/x-recordio-protobuf" not in answer.json()["error"].split("answers:")[1]
