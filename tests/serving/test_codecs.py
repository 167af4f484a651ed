"""Request bodies (:mod:`streamfit.serving.codecs`): the fast path for small CSV bodies reads
what the library's reader reads, and leaves every other body to it."""

from __future__ import annotations

import pytest
import torch

from streamfit.core.model import Model
from streamfit.core.registry import load_model
from streamfit.errors import DataError, StreamfitError
from streamfit.serving import codecs
from streamfit.serving.codecs import Body, Rows, decode_rows
from tests.serving.conftest import N_FEATURES, Models, csv_body, rows

FIELDS = ["+1", ".5", "5.", "-.5", "1e5", "1E-3", "+.5e-3", "00012", "-0", "1e-50", "0.1"]
BAD = ["1e", "e5", ".", "-", "1.2.3", "1--2", "1e400", "3.4028236e38", "nan", ""]


@pytest.fixture(scope="module")
def model(models: Models) -> Model:
    return load_model(models.ll)


def _by_reader(model: Model, data: bytes, monkeypatch: pytest.MonkeyPatch) -> Rows:
    with monkeypatch.context() as m:
        m.setattr(codecs, "_FAST_CSV_BYTES", -1)  # every body to the reader
        return decode_rows(model, Body("csv", data), 100)


def _line(first: str) -> bytes:
    return (",".join([first] + ["1"] * (N_FEATURES - 1)) + "\n").encode()


def test_plain_rows_take_the_fast_path_and_read_as_the_reader_reads(
    model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = csv_body(rows(5)) + b"\n" + b",".join(f.encode() for f in FIELDS[:N_FEATURES]) + b"\r\n"
    fast = codecs._fast_csv(data, N_FEATURES, 100)
    assert fast is not None and fast.n_rows == 6
    assert torch.equal(decode_rows(model, Body("csv", data), 100).features, fast.features)
    assert torch.equal(fast.features, _by_reader(model, data, monkeypatch).features)


@pytest.mark.parametrize("field", FIELDS)
def test_each_number_form_reads_as_the_reader_reads_it(
    model: Model, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = codecs._fast_csv(_line(field), N_FEATURES, 100)
    assert fast is not None
    assert torch.equal(fast.features, _by_reader(model, _line(field), monkeypatch).features)


@pytest.mark.parametrize("field", BAD)
def test_a_bad_field_is_left_to_the_reader_which_names_it(model: Model, field: str) -> None:
    assert codecs._fast_csv(_line(field), N_FEATURES, 100) is None
    with pytest.raises(DataError) as caught:
        decode_rows(model, Body("csv", _line(field)), 100)
    assert caught.value.row == 1 and caught.value.field == "column 1"


@pytest.mark.parametrize("field", [" 1", "1_0", '"1"'])
def test_unusual_forms_are_left_to_the_reader(
    model: Model, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert codecs._fast_csv(_line(field), N_FEATURES, 100) is None
    got = decode_rows(model, Body("csv", _line(field)), 100).features
    assert torch.equal(got, _by_reader(model, _line(field), monkeypatch).features)


@pytest.mark.parametrize(
    "data",
    [b"1,2,3\n", b"1,2,3,4,5\n", b"1,2,3,4\n1,2,3\n1,2,3,4,5\n", b"\n\n"],
)
def test_other_bodies_are_refused_as_the_reader_refuses_them(
    model: Model, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert codecs._fast_csv(data, N_FEATURES, 100) is None
    with pytest.raises(StreamfitError) as fast:
        decode_rows(model, Body("csv", data), 100)
    with pytest.raises(StreamfitError) as reader:
        _by_reader(model, data, monkeypatch)
    assert str(fast.value) == str(reader.value)


def test_a_body_over_the_row_limit_is_left_to_the_reader(model: Model) -> None:
    data = csv_body(rows(3))
    assert codecs._fast_csv(data, N_FEATURES, 2) is None
    with pytest.raises(StreamfitError, match="more than 2 rows"):
        decode_rows(model, Body("csv", data), 2)
