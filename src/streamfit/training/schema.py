"""The input schema a state was trained on, recorded in it and in the models it gives, so
that later reads of any channel (validation, test, resume, predict) match named columns by
name; and likewise how it read raw text (:mod:`streamfit.data.auxiliary`)."""

from __future__ import annotations

from typing import Any

from streamfit.core.model import Model
from streamfit.core.state import State
from streamfit.data.auxiliary import TEXT_KEY, text_record
from streamfit.data.source import Source

__all__ = ["input_record", "record_schema", "with_input_schema"]


def input_record(source: Source) -> dict[str, Any]:
    """What a state records of how ``source`` is read: its named columns (once known) and its
    text settings (when not the defaults)."""
    out: dict[str, Any] = {}
    if source.schema is not None:
        out["schema"] = source.schema.to_json()
    text = text_record(source.options.vocabulary, source.options.stop_words)
    if text is not None:
        out[TEXT_KEY] = text
    return out


def record_schema(state: State, source: Source) -> None:
    """Keep in ``state`` the named columns ``source`` was read with (once known; the first
    kept) and its text settings, so that later reads of any channel, and the models, match
    columns by name and count words into the same ids."""
    record = input_record(source)
    if "schema" in state.inputs:
        record.pop("schema", None)
    state.inputs.update(record)


def with_input_schema(model: Model, state: State) -> Model:
    """``model``, recording the input schema of the state it was finalized from: ``predict``
    then reads named columns by name."""
    if "schema" in state.inputs:
        model.meta["input_schema"] = state.inputs["schema"]
    if TEXT_KEY in state.inputs:
        model.meta[TEXT_KEY] = state.inputs[TEXT_KEY]
    return model
