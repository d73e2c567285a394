"""config.pbtxt's top-level name is made to agree with the lease's name, and nothing else changes."""

from __future__ import annotations

from pathlib import Path

from fetcher.model_folder import configured_name, make_name_agree

CONFIG = '''# name: "commented"
name: "resnet"  # the model
platform: "onnxruntime_onnx"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3 ] } ]
output { name: "name" data_type: TYPE_FP32 dims: [ 1 ] }
parameters { key: "name" value: { string_value: "name: \\"x\\"" } }
'''


def test_only_the_top_level_name_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / "config.pbtxt").write_text(CONFIG)
    assert make_name_agree(tmp_path, "my_model") == "resnet"
    assert (tmp_path / "config.pbtxt").read_text() == CONFIG.replace('name: "resnet"', 'name: "my_model"')
    assert configured_name(tmp_path / "config.pbtxt") == "my_model"


def test_top_level_name_after_nested_blocks(tmp_path: Path) -> None:
    text = 'input [ { name: "INPUT0" } ]\nname: \'inner\'\n'
    (tmp_path / "config.pbtxt").write_text(text)
    assert make_name_agree(tmp_path, "outer") == "inner"
    assert (tmp_path / "config.pbtxt").read_text() == 'input [ { name: "INPUT0" } ]\nname: \'outer\'\n'


def test_agreeing_or_absent_names_leave_the_file_untouched(tmp_path: Path) -> None:
    (tmp_path / "config.pbtxt").write_text('name: "same"\n')
    assert make_name_agree(tmp_path, "same") is None
    (tmp_path / "config.pbtxt").write_text('backend: "python"\ninput [ { name: "x" } ]\n')
    assert make_name_agree(tmp_path, "other") is None
    assert (tmp_path / "config.pbtxt").read_text() == 'backend: "python"\ninput [ { name: "x" } ]\n'


def test_line_endings_bom_comments_and_everything_else_stay_byte_for_byte(tmp_path: Path) -> None:
    # As Notepad on Windows saves a file: UTF-8 with a byte order mark and CRLF line endings.
    original = ("\ufeff" + CONFIG.replace("\n", "\r\n") + "# trailing comment, no newline").encode("utf-8")
    (tmp_path / "config.pbtxt").write_bytes(original)
    assert make_name_agree(tmp_path, "my_model") == "resnet"
    assert (tmp_path / "config.pbtxt").read_bytes() == original.replace(b'name: "resnet"', b'name: "my_model"')
    assert configured_name(tmp_path / "config.pbtxt") == "my_model"
