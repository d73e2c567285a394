"""Sample Triton models (python backend) and zips of them in either reference layout."""

from __future__ import annotations

import zipfile
from pathlib import Path

MODEL_PY = '''\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            result = (values + {addend}).astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", result)]))
        return responses
'''

CONFIG_PBTXT = '''\
name: "{name}"
backend: "python"
max_batch_size: 0
input [
  {{
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }}
]
output [
  {{
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }}
]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
'''


def write_model(folder: Path, name: str, *, addend: float = 1.0, config_name: str | None = None) -> Path:
    """A model directory ``folder`` whose inference adds ``addend`` to a 4-vector of FP32."""
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(CONFIG_PBTXT.format(name=config_name or name))
    (folder / "1" / "model.py").write_text(MODEL_PY.format(addend=addend))
    return folder


def model_files(name: str, *, addend: float = 1.0, config_name: str | None = None) -> dict[str, bytes]:
    """The model's files as relative path -> content."""
    return {
        "config.pbtxt": CONFIG_PBTXT.format(name=config_name or name).encode(),
        "1/model.py": MODEL_PY.format(addend=addend).encode(),
    }


def zip_model(path: Path, files: dict[str, bytes], *, top_folder: str | None = None,
              extra: dict[str, bytes] | None = None) -> Path:
    """Zip ``files`` at the top of the archive, or inside ``top_folder/`` (the reference's two layouts)."""
    prefix = f"{top_folder}/" if top_folder else ""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        folders = sorted({prefix + name.rsplit("/", 1)[0] + "/" for name in files if "/" in name})
        if prefix:
            zf.writestr(zipfile.ZipInfo(prefix), b"")
        for folder in folders:
            zf.writestr(zipfile.ZipInfo(folder), b"")
        for name, content in files.items():
            zf.writestr(prefix + name, content)
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return path


def write_large_model(folder: Path, name: str, weight_bytes: int, *, seed: int = 0) -> Path:
    """A model folder with ``weight_bytes`` of seeded random weights in two files (written in
    chunks, so gigabytes never sit in memory), beside the usual config.pbtxt and model.py."""
    import random

    write_model(folder, name)
    rng = random.Random(seed)
    sizes = {"1/weights-a.bin": weight_bytes * 3 // 4, "1/weights-b.bin": weight_bytes - weight_bytes * 3 // 4}
    for relative, size in sizes.items():
        with open(folder / relative, "wb") as out:
            left = size
            while left:
                chunk = rng.randbytes(min(left, 8 << 20))
                out.write(chunk)
                left -= len(chunk)
    return folder


def zip_folder(path: Path, folder: Path) -> Path:
    """Zip a model folder from disk, members stored (random weights do not compress), ZIP64 when needed."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(file, file.relative_to(folder).as_posix())
    return path
