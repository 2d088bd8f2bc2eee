from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latprof.errors import ModelLoadError, UsageError
from latprof.loading import load_model

MODELS = Path(__file__).parent / "models"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_factory_and_input_shape() -> None:
    loaded = load_model(str(MODELS / "good.py"))
    assert isinstance(loaded.module, torch.nn.Sequential)
    assert loaded.args[0].shape == (1, 3, 8, 8)


def test_cli_shape_and_batch_override() -> None:
    loaded = load_model(str(MODELS / "good.py"), [(2, 3, 8, 8)], batch_size=5)
    assert loaded.args[0].shape == (5, 3, 8, 8)


def test_example_input_dict_becomes_kwargs() -> None:
    loaded = load_model(str(MODELS / "example_kwargs.py"), batch_size=4)
    assert loaded.args == ()
    assert loaded.kwargs["x"].shape == (4, 6) and loaded.kwargs["scale"].shape == (4, 3)


def test_single_local_class_is_instantiated() -> None:
    loaded = load_model(str(MODELS / "one_class.py"))
    assert type(loaded.module).__name__ == "Net"


def test_named_attribute() -> None:
    loaded = load_model(f"{MODELS / 'two_instances.py'}:decoder", [(1, 4)])
    assert loaded.module.out_features == 2


def test_ambiguous_file_lists_candidates() -> None:
    with pytest.raises(
        ModelLoadError,
        match=r"ambiguous: found encoder \(instance\), "
        r"decoder \(instance\); pick one with .*:NAME",
    ):
        load_model(str(MODELS / "two_instances.py"), [(1, 4)])


def test_missing_attribute_lists_candidates() -> None:
    with pytest.raises(ModelLoadError, match=r"has no attribute 'nope'; found encoder"):
        load_model(f"{MODELS / 'two_instances.py'}:nope")


def test_no_model_in_file() -> None:
    with pytest.raises(ModelLoadError, match=r"no model found in .*empty\.py: define build_model"):
        load_model(str(MODELS / "empty.py"))


def test_missing_file_and_not_python(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope.py"))
    with pytest.raises(ModelLoadError, match="is not a Python file"):
        load_model(str(write(tmp_path, "weights.pt", "x")))


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "import torch\n\nmodel = torch.nn.Linear(2, 2\n")
    with pytest.raises(ModelLoadError, match=r"broken.py:3: syntax error"):
        load_model(str(path))


def test_exception_while_importing_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "boom.py", "x = 1\n\nraise ValueError('no weights')\n")
    with pytest.raises(ModelLoadError, match=r"boom.py:3: ValueError while importing: no weights"):
        load_model(str(path))


def test_factory_that_raises() -> None:
    with pytest.raises(
        ModelLoadError,
        match=r"factory_raises.py:5: .*build_model\(\) raised "
        r"RuntimeError: weights file missing",
    ):
        load_model(str(MODELS / "factory_raises.py"))


def test_factory_needing_arguments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "args.py",
        "from torch import nn\n\ndef build_model(width):\n    return nn.Linear(width, 2)\n",
    )
    with pytest.raises(ModelLoadError, match="needs arguments"):
        load_model(str(path))


def test_no_input_known(tmp_path: Path) -> None:
    path = write(tmp_path, "noin.py", "from torch import nn\nmodel = nn.Linear(2, 2)\n")
    with pytest.raises(UsageError, match=r"no input .*--input-shape"):
        load_model(str(path))


@pytest.mark.parametrize(
    "value", ["(1, 4.0)", "4", '[1, "a"]', "(1, -4)", '"1,4"', "()", "[]", "[(1, 4), 5]", "(True,)"]
)
def test_a_bad_input_shape_in_the_file_is_one_clear_error(tmp_path: Path, value: str) -> None:
    path = write(
        tmp_path, "m.py", f"from torch import nn\nmodel = nn.Linear(4, 4)\ninput_shape = {value}\n"
    )
    with pytest.raises(ModelLoadError, match=r"m.py: input_shape must be a tuple of positive ints"):
        load_model(str(path))


def test_a_bad_input_shape_is_only_an_error_where_it_is_used(tmp_path: Path) -> None:
    body = "import torch\nfrom torch import nn\nmodel = nn.Linear(4, 4)\ninput_shape = (1, None)\n"
    bad = write(tmp_path, "m.py", body)
    assert load_model(str(bad), [(2, 4)]).args[0].shape == (2, 4)  # --input-shape wins
    with_example = write(tmp_path, "e.py", body + "example_input = torch.zeros(3, 4)\n")
    assert load_model(str(with_example)).args[0].shape == (3, 4)  # example_input comes first
    with pytest.raises(ModelLoadError, match="input_shape must be a tuple of positive ints"):
        load_model(str(bad))


@pytest.mark.parametrize(
    ("value", "shapes"),
    [
        ("(1, 4)", [(1, 4)]),
        ("[1, 4]", [(1, 4)]),
        ("[(1, 4), (2, 4)]", [(1, 4), (2, 4)]),
        ("(torch.tensor(1).item(), torch.Size([4])[0])", [(1, 4)]),
        ("tuple(torch.tensor([1, 4]).numpy())", [(1, 4)]),  # numpy integers
    ],
)
def test_input_shape_forms_in_the_file(tmp_path: Path, value: str, shapes: list) -> None:
    text = f"import torch\nfrom torch import nn\nmodel = nn.Linear(4, 4)\ninput_shape = {value}\n"
    path = write(tmp_path, "m.py", text)
    assert [tuple(a.shape) for a in load_model(str(path)).args] == shapes


def test_zoo_and_unknown_zoo() -> None:
    loaded = load_model("zoo:cnn")
    assert loaded.args[0].shape == (1, 3, 32, 32)
    with pytest.raises(
        ModelLoadError, match="unknown zoo model 'nope'; known: cnn, densenet, dscnn"
    ):
        load_model("zoo:nope")


def test_torchvision_missing_is_clear() -> None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="needs torchvision, which is not installed"):
            load_model("torchvision:resnet18")
    else:
        assert load_model("torchvision:resnet18").args[0].shape == (1, 3, 224, 224)
