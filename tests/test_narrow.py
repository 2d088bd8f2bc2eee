"""Issue 13, item 8: on a narrow terminal a number is never cut. Lower-priority columns are
dropped first (a line under the table names them), then names wrap.

The profile is realistic in what makes tables wide: nested layer names of 40+ characters,
times of tens of thousands of µs, a custom layer without a MAC counter ("not counted").
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rich.cells import cell_len
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

from latprof.calibrate import Calibration
from latprof.cli import app
from latprof.config import ProfileConfig
from latprof.io.export import write_profile
from latprof.io.profile_file import save_json
from latprof.measure.clocks import FakeClock
from latprof.profiler import profile
from latprof.records import Profile
from latprof.render.terminal import profile_view, us

WIDE = 1000  # wide enough for every column: the reference each narrow rendering is held to


class Slow:
    """Mixin: each call takes the next of `cycle_ns` nanoseconds of fake time."""

    def slow(self, clock: FakeClock, *cycle_ns: int) -> Slow:
        self.clock, self.cycle, self.calls = clock, cycle_ns, 0
        return self

    def tick(self) -> None:
        self.clock.advance(self.cycle[self.calls % len(self.cycle)])
        self.calls += 1


class Conv2d(Slow, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return nn.Conv2d.forward(self, x)


class BatchNorm2d(Slow, nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return nn.BatchNorm2d.forward(self, x)


class SiLU(Slow, nn.SiLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return nn.SiLU.forward(self, x)


class SqueezeExcitationGateWithHardSigmoid(Slow, nn.Module):
    """No MAC counter is known for it: its MACs show as "not counted"."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


class Linear(Slow, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return nn.Linear.forward(self, x)


def block(clock: FakeClock, scale: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            expand_pointwise_convolution=Conv2d(8, 8, 1).slow(
                clock, 13_245_300 * scale, 13_100_000
            ),
            expand_batch_normalisation=BatchNorm2d(8).slow(clock, 1_234_500, 1_200_000),
            expand_activation=SiLU().slow(clock, 876_500),
            depthwise_convolution_5x5=Conv2d(8, 8, 5, padding=2, groups=8).slow(
                clock, 98_765_400 * scale, 97_000_000
            ),
            squeeze_excitation=SqueezeExcitationGateWithHardSigmoid().slow(clock, 4_321_000),
            project_pointwise_convolution=Conv2d(8, 8, 1).slow(clock, 21_098_700),
        )
    )


class RealisticNet(nn.Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.features = nn.Sequential(
            OrderedDict(
                stem_convolution=Conv2d(3, 8, 3, padding=1).slow(clock, 5_432_100),
                stage3_block2=block(clock, 1),
                stage4_block1=block(clock, 2),
            )
        )
        self.classifier = Linear(8, 1000).slow(clock, 7_654_300, 7_600_000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        self.clock.advance(3_000_000)  # time in no leaf: the (unattributed) row
        return self.classifier(x.mean((2, 3)))


CALIBRATION = Calibration(
    device="cpu",
    dtype="float32",
    peak_macs_per_s=2.0e9,
    bandwidth_bytes_per_s=8.0e9,
    matmul_n=1024,
    copy_bytes=64 * 2**20,
    threads=1,
    device_name="test-cpu",
)


@pytest.fixture(scope="module")
def realistic() -> Profile:
    torch.manual_seed(0)
    clock = FakeClock(read_cost_ns=100)
    return profile(
        RealisticNet(clock),
        (torch.zeros(1, 3, 8, 8),),
        config=ProfileConfig(warmup=2, trials=6, threads=1),
        name="realistic",
        clock=clock,
    )


def render(renderable: object, width: int) -> list[str]:
    console = Console(
        width=width, record=True, file=io.StringIO(), color_system=None, highlight=False
    )
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]


def cells(line: str, sep: str) -> list[str]:
    return [c.strip() for c in line.strip()[1:-1].split(sep)]


def tables(lines: list[str]) -> list[tuple[list[str], dict[str, list[str]], str]]:
    """Each table's header, its columns' cells (a row folded over several lines joined back
    into one cell) and the text under it up to the next table, with line breaks as spaces."""
    out = []
    starts = [i for i, line in enumerate(lines) if line.startswith("┏")]
    for n, start in enumerate(starts):
        end = next(i for i in range(start, len(lines)) if lines[i].startswith("└"))
        heads = [line for line in lines[start:end] if line.startswith("┃")]
        assert len(heads) == 1, "a header wrapped: " + "\n".join(heads)
        header = cells(heads[0], "┃")
        time_col = header.index("time µs")
        rows: list[list[str]] = []
        for line in lines[start:end]:
            if not line.startswith("│"):
                continue
            row = cells(line, "│")
            if row[time_col]:  # a new row; numbers never wrap, so they are on its first line
                rows.append(row)
            else:  # a name folded onto the next line
                rows[-1] = [a + b for a, b in zip(rows[-1], row, strict=True)]
        below_end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        below = " ".join(lines[end + 1 : below_end])
        out.append((header, {h: [r[i] for r in rows] for i, h in enumerate(header)}, below))
    return out


DROPPED = re.compile(r"columns dropped for width: (.*?); widen the terminal or use --format csv")


def check_width(p: Profile, width: int, by: str = "category", top: int = 10) -> list[list[str]]:
    """Render at `width`; hold every table to the wide rendering. The dropped names per table."""
    narrow = render(profile_view(p, by=by, top=top), width)
    text = "\n".join(narrow)
    too_wide = [line for line in narrow if cell_len(line) > width]
    assert not too_wide, f"lines wider than {width}:\n" + "\n".join(too_wide)
    assert "…" not in text, text  # nothing ellipsized: numbers whole, names folded
    wide = tables(render(profile_view(p, by=by, top=top), WIDE))
    got = tables(narrow)
    assert len(got) == len(wide)
    dropped_per_table = []
    for (header, columns, below), (all_headers, reference, wide_below) in zip(
        got, wide, strict=True
    ):
        assert "columns dropped" not in wide_below
        dropped = [h for h in all_headers if h not in header]
        assert header == [h for h in all_headers if h in header]  # same order, none renamed
        names = [h or "share bar" for h in dropped]
        said = DROPPED.search(below)
        if dropped:
            assert said, f"{width} columns: {names} dropped without a word:\n{text}"
            assert said.group(1).split(", ") == names
        else:
            assert not said, below
        for h in header:  # every cell of every kept column, whole
            assert columns[h] == reference[h], (width, h, columns[h], reference[h])
        dropped_per_table.append(names)
    return dropped_per_table


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_narrow_terminal_never_cuts_a_number(realistic: Profile, width: int) -> None:
    dropped = check_width(realistic, width)
    category, layers = dropped
    # what a row is, its time and its share are never dropped
    assert not {"category", "time µs", "share"} & set(category)
    assert not {"layer", "time µs", "share"} & set(layers)
    if width <= 80:
        assert layers, "80 columns cannot hold every layer column of this profile"
        assert "input → output" in layers and "median µs" in layers
    if width == 60:
        assert "share bar" in category


@pytest.mark.parametrize("width", [60, 80, 100])
def test_narrow_terminal_layer_views(realistic: Profile, width: int) -> None:
    check_width(realistic, width, by="layer")
    calibrated = replace(realistic, calibration=CALIBRATION)
    [layers] = check_width(calibrated, width, by="layer")
    assert layers  # the roofline columns make the table wider than 100
    check_width(calibrated, width, by="category", top=3)


# the order in which columns give way (uncalibrated profile)
CATEGORY_ORDER = ["share bar", "params", "MACs", "calls"]
LAYER_ORDER = ["input → output", "median µs", "MACs", "calls", "category"]


def test_columns_give_way_in_priority_order(realistic: Profile) -> None:
    """As the terminal narrows, columns go one by one in priority order and never come back;
    at 40 columns the tables still show what a row is, its time and its share, whole."""
    gone = {"category": 0, "layers": 0}
    for width in range(160, 39, -4):
        category, layers = check_width(realistic, width)
        for name, dropped, order in (
            ("category", category, CATEGORY_ORDER),
            ("layers", layers, LAYER_ORDER),
        ):
            k = len(dropped)
            assert set(dropped) == set(order[:k]), (width, dropped)
            assert k >= gone[name], (width, dropped)
            gone[name] = k
    assert gone == {"category": len(CATEGORY_ORDER), "layers": len(LAYER_ORDER)}


def test_explicit_width_wins_over_a_wider_console(realistic: Profile) -> None:
    at_80 = render(profile_view(realistic, width=80), 200)
    assert max(cell_len(line) for line in at_80) <= 80
    assert at_80 == render(profile_view(realistic), 80)
    assert "columns dropped for width" in " ".join(at_80)


def test_cli_report_on_a_narrow_terminal(realistic: Profile, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    save_json(realistic, path)
    env = {"COLUMNS": "70", "NO_COLOR": "1", "TERMINAL_WIDTH": None, "FORCE_COLOR": None}
    result = CliRunner().invoke(app, ["report", str(path), "--format", "table"], env=env)
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert "columns dropped for width:" in " ".join(result.stdout.split())
    for row in realistic.category_rows():
        assert us(row["time_us"]) in result.stdout and f"{row['share']:.1%}" in result.stdout


def test_text_file_keeps_every_column(realistic: Profile, tmp_path: Path) -> None:
    """A .txt file has no terminal: it is as wide as its widest table needs."""
    calibrated = replace(realistic, calibration=CALIBRATION)
    path = tmp_path / "p.txt"
    write_profile(calibrated, path, "table", "layer", 10)
    text = path.read_text(encoding="utf-8")
    assert "…" not in text and "columns dropped" not in text
    for name in ("of roof", "MAC/B", "input → output", "median µs"):
        assert name in text
    layer_names = [r["layer"] for r in calibrated.layer_rows()]
    assert all(name in text for name in layer_names)  # whole, on one line
