"""State and model folders: round trips, and every kind of damage is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from streamfit import ConfigError, CorruptStateError, IncompatibleStateError, State, load_model
from streamfit.algorithms.linear_learner import LinearLearner, LinearLearnerModel
from streamfit.core.persist import FORMAT_VERSION, _json_sum, save_folder


def _state() -> State:
    algo = LinearLearner(predictor_type="regressor", num_models=2)
    state = algo.init_state(3)
    state.counters["rows"] = 42
    state.position.rows = 42
    state.generator.manual_seed(7)
    torch.rand(3, generator=state.generator)  # advance the generator
    return state


def test_state_round_trip_keeps_everything(tmp_path: Path) -> None:
    state = _state()
    state.save(tmp_path / "s")
    loaded = State.load(tmp_path / "s", "linear-learner")
    assert loaded.algorithm == state.algorithm
    assert loaded.hyperparameters == state.hyperparameters
    assert loaded.counters == state.counters and loaded.position == state.position
    assert loaded.meta == state.meta
    for key, value in state.tensors.items():
        assert torch.equal(value, loaded.tensors[key]) and value.dtype == loaded.tensors[key].dtype
    # the random stream continues where it stopped
    assert torch.equal(
        torch.rand(5, generator=state.generator), torch.rand(5, generator=loaded.generator)
    )


def test_saving_again_replaces_the_folder_atomically(tmp_path: Path) -> None:
    state = _state()
    state.save(tmp_path / "s")
    state.counters["rows"] = 99
    state.save(tmp_path / "s")
    assert State.load(tmp_path / "s").counters["rows"] == 99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_files_are_safetensors_and_json_never_pickle(tmp_path: Path) -> None:
    _state().save(tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["state.json", "state.safetensors"]
    doc = json.loads((tmp_path / "s" / "state.json").read_text())
    assert doc["format"] == "streamfit-state" and doc["format_version"] == FORMAT_VERSION
    assert doc["position"] == {"epoch": 0, "rows": 42}
    raw = (tmp_path / "s" / "state.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["weight"] == {
        "dtype": "F32",
        "shape": [3, 2],
        "data_offsets": header["weight"]["data_offsets"],
    }


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (
            lambda d: (d / "state.safetensors").write_bytes(
                (d / "state.safetensors").read_bytes()[:50]
            ),
            CorruptStateError,
            "do not match the checksum",
        ),
        (lambda d: (d / "state.json").write_text("{not json"), CorruptStateError, "not valid JSON"),
        (lambda d: (d / "state.json").unlink(), CorruptStateError, "missing"),
        (lambda d: (d / "state.safetensors").unlink(), CorruptStateError, "missing"),
        (
            lambda d: _edit_json(d, format_version=FORMAT_VERSION + 1),
            IncompatibleStateError,
            "newer streamfit",
        ),
        (
            lambda d: _edit_json(d, format="something-else"),
            CorruptStateError,
            "not a streamfit state",
        ),
        (
            lambda d: _edit_json(d, n_features=7, reseal=False),
            CorruptStateError,
            "do not match its checksum",
        ),
        (lambda d: _edit_json(d, position=None), CorruptStateError, "incomplete state"),
        (lambda d: _edit_json(d, **{"sha256": "0" * 64}), CorruptStateError, "its checksum"),
        (lambda d: (d / "state.json").write_text("[" * 100_000), CorruptStateError, "not valid"),
    ],
)
def test_damaged_state_is_a_clear_error_naming_the_file(
    tmp_path: Path, damage, error, match
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "s"
    _state().save(folder)
    damage(folder)
    with pytest.raises(error, match=match) as info:
        State.load(folder)
    assert str(folder) in str(info.value)


def _edit_json(folder: Path, *, reseal: bool = True, **changes: object) -> None:
    """Change fields of the state's JSON; ``reseal`` recomputes its checksum, as a writer with
    a bug (rather than damage on disk) would, so that the checks after the checksum run."""
    doc = json.loads((folder / "state.json").read_text())
    doc.update(changes)
    if reseal and "sha256" not in changes:
        doc["sha256"] = _json_sum(doc)
    (folder / "state.json").write_text(json.dumps(doc))


def test_a_state_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    _state().save(tmp_path / "s")
    with pytest.raises(IncompatibleStateError, match="belongs to algorithm 'linear-learner'"):
        State.load(tmp_path / "s", "kmeans")


def test_model_round_trip_and_loading_by_name(tmp_path: Path) -> None:
    model = LinearLearnerModel(
        {"weight": torch.randn(3, 1), "bias": torch.zeros(1)},
        {"predictor_type": "regressor", "loss": "squared_loss", "n_features": 3},
    )
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, LinearLearnerModel)
    x = torch.randn(4, 3)
    assert torch.equal(model.predict(x)["score"], loaded.predict(x)["score"])
    with pytest.raises(CorruptStateError, match="not a readable streamfit model"):
        load_model(tmp_path / "nowhere")


def test_a_version_1_state_without_a_json_checksum_still_loads(tmp_path: Path) -> None:
    _state().save(tmp_path / "s")
    doc = json.loads((tmp_path / "s" / "state.json").read_text())
    del doc["sha256"]
    doc["format_version"] = 1
    (tmp_path / "s" / "state.json").write_text(json.dumps(doc))
    assert State.load(tmp_path / "s").position.rows == 42


@pytest.mark.parametrize("kind", ["a file", "a foreign folder", "a folder with extras"])
def test_saving_never_replaces_what_streamfit_did_not_write(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "s"
    if kind == "a file":
        target.write_text("precious")
    elif kind == "a foreign folder":
        target.mkdir()
        (target / "state.json").write_text('{"format": "mine"}')
    else:
        _state().save(target)
        (target / "notes.txt").write_text("precious")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="refusing to replace"):
        _state().save(target)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_saving_over_a_state_replaces_it(tmp_path: Path) -> None:
    _state().save(tmp_path / "s")
    state = _state()
    state.position.rows = 7
    state.save(tmp_path / "s")
    assert State.load(tmp_path / "s").position.rows == 7


def test_extra_files_a_folder_lists_are_its_own(tmp_path: Path) -> None:
    target = tmp_path / "m"
    tensors = {"w": torch.ones(2)}
    save_folder(target, "model", "x", tensors, {}, {"topics.json": b"{}"})
    assert json.loads((target / "model.json").read_text())["extra_files"] == ["topics.json"]
    save_folder(target, "model", "x", tensors, {}, {"topics.json": b"[]"})  # replaced
    assert (target / "topics.json").read_bytes() == b"[]"
    save_folder(target, "model", "x", tensors, {})  # and removed when no longer written
    assert not (target / "topics.json").exists()
    (target / "topics.json").write_text("precious")  # not listed: not streamfit's
    with pytest.raises(ConfigError, match=r"refusing to replace"):
        save_folder(target, "model", "x", tensors, {})
    for name in ("../x.json", ".hidden", "model.json"):
        with pytest.raises(ConfigError, match="cannot write an extra file"):
            save_folder(tmp_path / "n", "model", "x", tensors, {}, {name: b""})
