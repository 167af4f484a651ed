"""Following published versions (:mod:`streamfit.serving.versions`): real versions written by
the trainer's :class:`~streamfit.training.publish.Publisher`, swapped in under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from streamfit import Batch, get_algorithm
from streamfit.errors import ConfigError
from streamfit.serving import ServeSettings, create_app, load_served
from streamfit.serving.app import VERSION_HEADER
from streamfit.training.loop import Loop, warm_up
from streamfit.training.publish import LATEST, MODELS, Publisher
from tests.serving.conftest import N_FEATURES, csv_body, rows

CSV = {"Content-Type": "text/csv"}
BODY = csv_body(rows(1))


class Trainer:
    """A Linear Learner trained a batch further before each publication, so that versions
    answer differently."""

    def __init__(self, output: Path) -> None:
        self.algo = get_algorithm("linear-learner")(predictor_type="binary_classifier")
        self.generator = torch.Generator().manual_seed(0)
        self.publisher = Publisher(output, every=3600, keep=3)
        self.rows = 0
        first = self._batch()
        self.state, batches = warm_up(self.algo, None, iter([first]), torch.device("cpu"), "t")
        self.loop = Loop(self.algo)
        for batch in batches:
            self.loop.step(self.state, batch)

    def _batch(self) -> Batch:
        x = torch.randn(64, N_FEATURES, generator=self.generator)
        self.rows += 64
        return Batch(x, (x[:, 0] > 0).float(), end_position=self.rows)

    def publish(self) -> str:
        self.loop.step(self.state, self._batch())
        return self.publisher.publish(self.algo, self.state).name


@pytest.fixture
def output(tmp_path: Path) -> Path:
    return tmp_path / "job"


def _serve(output: Path | str, poll: float = 0.02) -> TestClient:
    return TestClient(create_app(load_served([str(output)]), ServeSettings(poll_seconds=poll)))


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def _version(client: TestClient) -> str:
    answer = client.post("/invocations", content=BODY, headers=CSV)
    assert answer.status_code == 200, answer.text
    return answer.headers[VERSION_HEADER]


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'{name}{{model="job"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_swap_under_load_drops_nothing_and_versions_only_move_forward(output: Path) -> None:
    trainer = Trainer(output)
    published = [trainer.publish()]
    seen: list[list[str]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    def hammer(client: TestClient, mine: list[str]) -> None:
        while not stop.is_set():
            answer = client.post("/invocations", content=BODY, headers=CSV)
            if answer.status_code != 200:
                failures.append(answer.text)
            mine.append(answer.headers.get(VERSION_HEADER, "none"))

    with _serve(output) as client:
        threads = [threading.Thread(target=hammer, args=(client, s)) for s in seen]
        for t in threads:
            t.start()
        try:
            for _ in range(4):
                time.sleep(0.15)
                published.append(trainer.publish())
            _until(lambda: all(s and s[-1] == published[-1] for s in seen))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert _metric(client, "streamfit_serving_model_swaps_total") >= 2
        models = client.get("/models").json()["models"]
    assert not failures
    for mine in seen:
        assert set(mine) <= set(published)
        assert mine == sorted(mine)  # zero-padded numbers: text order is number order
    assert len({v for s in seen for v in s}) >= 3  # the swaps happened while asked
    assert models[0]["version"] == published[-1] == "000005"
    assert models[0]["path"] == str(output / MODELS / "000005" / "model")


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(output: Path) -> None:
    trainer = Trainer(output)
    trainer.publish()
    with _serve(output) as client:
        assert _version(client) == "000001"
        # A version whose model file is cut short, moved into place as the publisher does.
        broken = output / MODELS / "000002" / "model"
        broken.mkdir(parents=True)
        (broken / "model.json").write_text('{"algorithm": ')
        link = output / MODELS / ".link"
        link.symlink_to("000002")
        link.replace(output / MODELS / LATEST)
        _until(lambda: _metric(client, "streamfit_serving_model_swap_failures_total") == 1)
        assert [_version(client) for _ in range(3)] == ["000001"] * 3
        time.sleep(0.1)  # polls go on: a failed version is not loaded again and again
        assert _metric(client, "streamfit_serving_model_swap_failures_total") == 1
        assert trainer.publish() == "000003"
        _until(lambda: _version(client) == "000003")
        assert _metric(client, "streamfit_serving_model_swaps_total") == 1


def test_the_models_folder_serves_under_the_outputs_name(output: Path) -> None:
    Trainer(output).publish()
    with _serve(output / MODELS) as client:
        assert client.get("/ping").json()["models"] == ["job"]
        assert _version(client) == "000001"


def test_a_fixed_model_folder_answers_without_a_version(output: Path) -> None:
    Trainer(output).publish()
    with _serve(output / MODELS / "000001") as client:
        answer = client.post("/invocations", content=BODY, headers=CSV)
    assert answer.status_code == 200 and VERSION_HEADER not in answer.headers


def test_an_output_with_no_version_yet_is_refused(output: Path) -> None:
    (output / MODELS).mkdir(parents=True)
    with pytest.raises(ConfigError, match="no version published yet"):
        load_served([str(output)])
