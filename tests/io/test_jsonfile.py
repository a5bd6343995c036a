"""User JSON (keys, truth files, sweep configs) read safely: bounded, never a traceback."""

from __future__ import annotations

import pytest

from nnforensics.errors import ConfigError, CorruptFileError
from nnforensics.io.jsonfile import parse_json, read_json


@pytest.mark.parametrize("text, reason", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("[" * 70 + "]" * 70, "nested too deeply"),
    ("[" + "9" * 5000 + "]", "an integer with thousands of digits"),
    ("[NaN]", "not valid JSON"),
    ("[1e999]", r"non-finite number 1e999 \(too large for a float\)"),  # would silently be inf
    ('{"strength": -1E400}', r"non-finite number -1E400"),
    ('{"a": 1', "not valid JSON"),
])
def test_hostile_json_is_one_clear_error(text, reason):
    with pytest.raises(CorruptFileError, match=reason) as caught:
        parse_json(text, "key file 'k.json'")
    assert "set_int_max_str_digits" not in str(caught.value) and "\n" not in str(caught.value)


def test_files_empty_binary_missing_or_too_large(tmp_path):
    empty, binary, big = tmp_path / "e.json", tmp_path / "b.json", tmp_path / "big.json"
    empty.write_text(" ")
    binary.write_bytes(b"\xff\xfe\x00")
    big.write_text("[" + "0," * 100 + "0]")
    with pytest.raises(CorruptFileError, match="empty"):
        read_json(empty)
    with pytest.raises(CorruptFileError, match="not text"):
        read_json(binary)
    with pytest.raises(CorruptFileError, match="bytes"):
        read_json(big, max_bytes=64)
    with pytest.raises(ConfigError, match="not found"):
        read_json(tmp_path / "missing.json")
    assert parse_json('{"a": [1, 2]}', "x") == {"a": [1, 2]}


def test_large_but_finite_floats_and_nan_when_allowed():
    assert parse_json("[1e308, -2.5e-320]", "x") == [1e308, -2.5e-320]
    assert parse_json("[1e999]", "model metadata", allow_nan=True) == [float("inf")]  # metrics may be inf/NaN
