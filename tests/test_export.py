"""ONNX export: onnxruntime's outputs equal PyTorch's within 1e-4, for any batch size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import tiny_config

from signvision.inference.export import Deployable, export_onnx
from signvision.inference.members import load_run_model as load_run
from signvision.runs.run import fit

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not


@pytest.mark.parametrize("model,target", [("lenet", None), ("resnet18", "Me voy")])
def test_onnx_matches_pytorch(tiny_zindi, tmp_path, model, target):
    ort = pytest.importorskip("onnxruntime")
    fit(
        tiny_config(tiny_zindi, tmp_path / "run", model=model, image_size=32, epochs=1, target=target),
    )
    path = export_onnx(tmp_path / "run")
    run = load_run(tmp_path / "run")
    net, task, ckpt = run.model, run.task, run.ckpt
    assert run.temperature is not None  # the export carries the calibration
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
        got = session.run(None, {"images": images.numpy()})[0]
        with torch.no_grad():
            mean = torch.tensor(ckpt["norm"]["mean"]).view(1, 3, 1, 1)
            std = torch.tensor(ckpt["norm"]["std"]).view(1, 3, 1, 1)
            expected = task.probs(net((images.float() / 255 - mean) / std), run.temperature).numpy()
        assert got.shape[0] == batch
        np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-4)
        with torch.no_grad():
            wrapped = Deployable(net, ckpt["norm"]["mean"], ckpt["norm"]["std"], task, run.temperature)(images).numpy()
        np.testing.assert_allclose(got, wrapped, atol=1e-4)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["temperature"] == pytest.approx(run.temperature) and meta["image_size"] == 32
    assert meta["outputs"] == (["Me voy"] if target else task.classes)
