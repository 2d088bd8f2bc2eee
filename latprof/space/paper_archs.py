"""Architecture tables of the TF-NAS paper as Python data.

Transcribed from the supplementary material of "TF-NAS: Rethinking Three Search Freedoms of
Latency-Constrained Differentiable Neural Architecture Search" (seed
``004_77e50622db024db4.txt``), Tables 9 to 20 ("Architecture details of ..."):

* Tables 9-12: TF-NAS-A, -B, -C, -D (GPU latency constrained, with SE);
* Tables 13-16: TF-NAS-A-wose ... -D-wose (the same search without SE modules);
* Tables 17-18: TF-NAS-CPU-A, -CPU-B (CPU latency constrained);
* Tables 19-20: TF-NAS-MBV2-A, -MBV2-B (MobileNetV2-based search space, Table 5).

FLOPs (M) and top-1 accuracy come from Table 4 (Tables 9-18) and Table 6 (Tables 19-20).

Each table is embedded below as a text block mirroring the paper's columns, parsed at import::

    Input  Operation    C_in  e x C_in  e_se x C_in  C_out  Act  Stride

``Input`` keeps only the spatial size (``224^2 x 3`` -> ``224``; the paper's ``112^3 x 32``
typo is read as 112). ``-`` (the Conv rows) becomes 0. The AvgPool and Fc rows are omitted:
every architecture ends in a 7x7 average pool and an Fc 1280 -> 1000.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER_ARCHS", "Layer", "PaperArch"]

_ACTS = ("relu", "relu6", "swish")


@dataclass(frozen=True)
class Layer:
    """One MBInvRes or Conv row of a TF-NAS architecture table."""

    op: str  # "conv" (3x3 stem conv, 1x1 head conv) or "mbinvres"
    kernel: int
    c_in: int
    mid: int  # the "e x C_in" column (0 for conv)
    se: int  # the "e_se x C_in" column (0 for conv / no SE)
    c_out: int
    act: str  # "relu", "relu6" or "swish"
    stride: int
    h: int  # input spatial size (224, 112, 56, 28, 14, 7)


@dataclass(frozen=True)
class PaperArch:
    """One searched architecture of the paper, with its reported FLOPs and top-1."""

    name: str  # zoo name, e.g. "tfnas-a", "tfnas-cpu-b", "tfnas-mbv2-a"
    title: str  # as printed in the table caption, e.g. "TF-NAS-A"
    table: int  # 9..20
    space: str  # "tfnas" (Tables 9-18) or "mbv2" (Tables 19-20)
    flops_m: int  # paper FLOPs (M)
    top1: float  # paper ImageNet top-1 (%)
    layers: tuple[Layer, ...]


def _parse_op(text: str) -> tuple[str, int]:
    if text.startswith("MBInvRes_k"):
        return "mbinvres", int(text.removeprefix("MBInvRes_k"))
    if text in ("Conv3x3", "Conv1x1"):
        return "conv", int(text[4])
    raise ValueError(f"unknown operation {text!r}")


def _parse(block: str) -> tuple[Layer, ...]:
    """Parse one embedded table (one row per line, whitespace separated)."""
    layers: list[Layer] = []
    for line in block.strip().splitlines():
        cells = line.split()
        if len(cells) != 8:
            raise ValueError(f"expected 8 columns, got {len(cells)}: {line!r}")
        h, op_text, c_in, mid, se, c_out, act, stride = cells
        op, kernel = _parse_op(op_text)
        if act.lower() not in _ACTS:
            raise ValueError(f"unknown activation {act!r}: {line!r}")
        layers.append(
            Layer(
                op=op,
                kernel=kernel,
                c_in=int(c_in),
                mid=0 if mid == "-" else int(mid),
                se=0 if se == "-" else int(se),
                c_out=int(c_out),
                act=act.lower(),
                stride=int(stride),
                h=int(h),
            )
        )
    return tuple(layers)


# Columns: Input  Operation  C_in  e x C_in  e_se x C_in  C_out  Act  Stride

# Table 9: TF-NAS-A
_T9 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    8    16  ReLU  1
112  MBInvRes_k3   16     83   32    24  ReLU  2
 56  MBInvRes_k5   24    128    0    24  ReLU  1
 56  MBInvRes_k3   24    138   48    40  Swish 2
 28  MBInvRes_k3   40    297    0    40  Swish 1
 28  MBInvRes_k5   40    170   80    40  Swish 1
 28  MBInvRes_k5   40    248   80    80  Swish 2
 14  MBInvRes_k3   80    500    0    80  Swish 1
 14  MBInvRes_k3   80    424    0    80  Swish 1
 14  MBInvRes_k3   80    477    0    80  Swish 1
 14  MBInvRes_k3   80    504  160   112  Swish 1
 14  MBInvRes_k3  112    796    0   112  Swish 1
 14  MBInvRes_k3  112    723  224   112  Swish 1
 14  MBInvRes_k3  112    555  224   112  Swish 1
 14  MBInvRes_k3  112    813    0   192  Swish 2
  7  MBInvRes_k3  192   1370    0   192  Swish 1
  7  MBInvRes_k3  192   1138  384   192  Swish 1
  7  MBInvRes_k3  192   1359  384   192  Swish 1
  7  MBInvRes_k5  192   1203  384   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 10: TF-NAS-B
_T10 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    8    16  ReLU  1
112  MBInvRes_k3   16     64   32    24  ReLU  2
 56  MBInvRes_k3   24    118   48    24  ReLU  1
 56  MBInvRes_k5   24     96   48    40  Swish 2
 28  MBInvRes_k3   40    203   80    40  Swish 1
 28  MBInvRes_k5   40    161   80    40  Swish 1
 28  MBInvRes_k3   40    224    0    80  Swish 2
 14  MBInvRes_k5   80    361  160    80  Swish 1
 14  MBInvRes_k3   80    323  160    80  Swish 1
 14  MBInvRes_k3   80    320  160    80  Swish 1
 14  MBInvRes_k3   80    324  160   112  Swish 1
 14  MBInvRes_k3  112    581    0   112  Swish 1
 14  MBInvRes_k3  112    482  224   112  Swish 1
 14  MBInvRes_k3  112    667    0   112  Swish 1
 14  MBInvRes_k3  112    579    0   192  Swish 2
  7  MBInvRes_k3  192    738    0   192  Swish 1
  7  MBInvRes_k3  192   1028  384   192  Swish 1
  7  MBInvRes_k3  192   1161  384   192  Swish 1
  7  MBInvRes_k5  192    881  384   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 11: TF-NAS-C
_T11 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    8    16  ReLU  1
112  MBInvRes_k5   16     64   32    24  ReLU  2
 56  MBInvRes_k5   24     48   24    40  Swish 2
 28  MBInvRes_k5   40    160   80    40  Swish 1
 28  MBInvRes_k5   40    160   80    40  Swish 1
 28  MBInvRes_k5   40    160   80    80  Swish 2
 14  MBInvRes_k5   80    320    0    80  Swish 1
 14  MBInvRes_k5   80    160    0    80  Swish 1
 14  MBInvRes_k3   80    320  160    80  Swish 1
 14  MBInvRes_k3   80    320    0   112  Swish 1
 14  MBInvRes_k5  112    448  224   112  Swish 1
 14  MBInvRes_k3  112    448    0   112  Swish 1
 14  MBInvRes_k3  112    448  224   112  Swish 1
 14  MBInvRes_k3  112    448  224   192  Swish 2
  7  MBInvRes_k5  192    768  384   192  Swish 1
  7  MBInvRes_k5  192    768  384   192  Swish 1
  7  MBInvRes_k3  192    384  192   192  Swish 1
  7  MBInvRes_k5  192    768  384   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 12: TF-NAS-D
_T12 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    8    16  ReLU  1
112  MBInvRes_k3   16     65   32    24  ReLU  2
 56  MBInvRes_k3   24     63    0    24  ReLU  1
 56  MBInvRes_k3   24     58   24    40  Swish 2
 28  MBInvRes_k5   40    106    0    40  Swish 1
 28  MBInvRes_k5   40     80    0    40  Swish 1
 28  MBInvRes_k3   40    192   80    80  Swish 2
 14  MBInvRes_k3   80    219    0    80  Swish 1
 14  MBInvRes_k5   80    320    0    80  Swish 1
 14  MBInvRes_k3   80    212   80    80  Swish 1
 14  MBInvRes_k3   80    165    0   112  Swish 1
 14  MBInvRes_k5  112    245  112   112  Swish 1
 14  MBInvRes_k3  112    292  112   112  Swish 1
 14  MBInvRes_k3  112    408  112   112  Swish 1
 14  MBInvRes_k3  112    538    0   192  Swish 2
  7  MBInvRes_k5  192    768  192   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 13: TF-NAS-A-wose
_T13 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    0    16  ReLU  1
112  MBInvRes_k3   16     74    0    24  ReLU  2
 56  MBInvRes_k3   24    127    0    24  ReLU  1
 56  MBInvRes_k3   24    154    0    40  Swish 2
 28  MBInvRes_k5   40    239    0    40  Swish 1
 28  MBInvRes_k5   40    234    0    40  Swish 1
 28  MBInvRes_k5   40    270    0    80  Swish 2
 14  MBInvRes_k3   80    595    0    80  Swish 1
 14  MBInvRes_k5   80    506    0    80  Swish 1
 14  MBInvRes_k3   80    572    0    80  Swish 1
 14  MBInvRes_k3   80    640    0   112  Swish 1
 14  MBInvRes_k3  112    895    0   112  Swish 1
 14  MBInvRes_k5  112    802    0   112  Swish 1
 14  MBInvRes_k3  112    895    0   112  Swish 1
 14  MBInvRes_k3  112    817    0   192  Swish 2
  7  MBInvRes_k5  192   1536    0   192  Swish 1
  7  MBInvRes_k3  192   1281    0   192  Swish 1
  7  MBInvRes_k5  192   1495    0   192  Swish 1
  7  MBInvRes_k5  192   1536    0   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 14: TF-NAS-B-wose
_T14 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    0    16  ReLU  1
112  MBInvRes_k5   16     65    0    24  ReLU  2
 56  MBInvRes_k5   24     98    0    24  ReLU  1
 56  MBInvRes_k5   24    104    0    40  Swish 2
 28  MBInvRes_k5   40    136    0    40  Swish 1
 28  MBInvRes_k5   40    135    0    40  Swish 1
 28  MBInvRes_k3   40    248    0    80  Swish 2
 14  MBInvRes_k3   80    409    0    80  Swish 1
 14  MBInvRes_k3   80    530    0    80  Swish 1
 14  MBInvRes_k5   80    251    0    80  Swish 1
 14  MBInvRes_k3   80    498    0   112  Swish 1
 14  MBInvRes_k3  112    639    0   112  Swish 1
 14  MBInvRes_k5  112    573    0   112  Swish 1
 14  MBInvRes_k3  112    718    0   112  Swish 1
 14  MBInvRes_k5  112    896    0   192  Swish 2
  7  MBInvRes_k5  192   1209    0   192  Swish 1
  7  MBInvRes_k3  192   1276    0   192  Swish 1
  7  MBInvRes_k3  192   1536    0   192  Swish 1
  7  MBInvRes_k5  192   1526    0   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 15: TF-NAS-C-wose
_T15 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    0    16  ReLU  1
112  MBInvRes_k5   16     64    0    24  ReLU  2
 56  MBInvRes_k5   24     96    0    24  ReLU  1
 56  MBInvRes_k5   24     48    0    40  Swish 2
 28  MBInvRes_k5   40    160    0    40  Swish 1
 28  MBInvRes_k5   40    160    0    40  Swish 1
 28  MBInvRes_k5   40    160    0    80  Swish 2
 14  MBInvRes_k3   80    320    0    80  Swish 1
 14  MBInvRes_k5   80    320    0    80  Swish 1
 14  MBInvRes_k5   80    320    0    80  Swish 1
 14  MBInvRes_k3   80    320    0   112  Swish 1
 14  MBInvRes_k3  112    448    0   112  Swish 1
 14  MBInvRes_k3  112    448    0   112  Swish 1
 14  MBInvRes_k3  112    448    0   112  Swish 1
 14  MBInvRes_k3  112    448    0   192  Swish 2
  7  MBInvRes_k5  192    768    0   192  Swish 1
  7  MBInvRes_k3  192    768    0   192  Swish 1
  7  MBInvRes_k5  192    768    0   192  Swish 1
  7  MBInvRes_k5  192    768    0   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 16: TF-NAS-D-wose
_T16 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    0    16  ReLU  1
112  MBInvRes_k5   16     42    0    24  ReLU  2
 56  MBInvRes_k3   24     48    0    24  ReLU  1
 56  MBInvRes_k5   24     67    0    40  Swish 2
 28  MBInvRes_k3   40    117    0    40  Swish 1
 28  MBInvRes_k5   40    105    0    40  Swish 1
 28  MBInvRes_k3   40    104    0    80  Swish 2
 14  MBInvRes_k3   80    214    0    80  Swish 1
 14  MBInvRes_k5   80    194    0    80  Swish 1
 14  MBInvRes_k3   80    234    0   112  Swish 1
 14  MBInvRes_k3  112    228    0   112  Swish 1
 14  MBInvRes_k3  112    457    0   112  Swish 1
 14  MBInvRes_k3  112    457    0   112  Swish 1
 14  MBInvRes_k3  112    633    0   192  Swish 2
  7  MBInvRes_k5  192    973    0   192  Swish 1
  7  MBInvRes_k5  192   1081    0   192  Swish 1
  7  MBInvRes_k5  192   1116    0   192  Swish 1
  7  MBInvRes_k5  192   1161    0   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 17: TF-NAS-CPU-A
_T17 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    8    16  ReLU  1
112  MBInvRes_k3   16     64   32    24  ReLU  2
 56  MBInvRes_k5   24     96   48    24  ReLU  1
 56  MBInvRes_k5   24     96   48    40  Swish 2
 28  MBInvRes_k5   40    160   80    40  Swish 1
 28  MBInvRes_k5   40    160   80    40  Swish 1
 28  MBInvRes_k5   40    160   80    80  Swish 2
 14  MBInvRes_k3   80    320  160    80  Swish 1
 14  MBInvRes_k3   80    160   80    80  Swish 1
 14  MBInvRes_k3   80    320  160    80  Swish 1
 14  MBInvRes_k3   80    320  160   112  Swish 1
 14  MBInvRes_k3  112    448  224   112  Swish 1
 14  MBInvRes_k5  112    448  224   112  Swish 1
 14  MBInvRes_k5  112    224    0   112  Swish 1
 14  MBInvRes_k3  112    448  224   192  Swish 2
  7  MBInvRes_k3  192    768  384   192  Swish 1
  7  MBInvRes_k3  192    768  384   192  Swish 1
  7  MBInvRes_k3  192    768  384   192  Swish 1
  7  MBInvRes_k5  192    768  384   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 18: TF-NAS-CPU-B
_T18 = """
224  Conv3x3        3      -    -    32  ReLU  2
112  MBInvRes_k3   32     32    8    16  ReLU  1
112  MBInvRes_k3   16     64   32    24  ReLU  2
 56  MBInvRes_k3   24     96    0    24  ReLU  1
 56  MBInvRes_k3   24     96   48    40  Swish 2
 28  MBInvRes_k5   40     80    0    40  Swish 1
 28  MBInvRes_k3   40     80    0    40  Swish 1
 28  MBInvRes_k5   40    160    0    80  Swish 2
 14  MBInvRes_k3   80    320    0    80  Swish 1
 14  MBInvRes_k3   80    160   80    80  Swish 1
 14  MBInvRes_k5   80    320    0    80  Swish 1
 14  MBInvRes_k3   80    320    0   112  Swish 1
 14  MBInvRes_k3  112    448  224   192  Swish 2
  7  MBInvRes_k3  192    768  384   192  Swish 1
  7  MBInvRes_k5  192    768    0   192  Swish 1
  7  MBInvRes_k3  192    768    0   192  Swish 1
  7  MBInvRes_k3  192    768  384   320  Swish 1
  7  Conv1x1      320      -    -  1280  Swish 1
"""

# Table 19: TF-NAS-MBV2-A
_T19 = """
224  Conv3x3        3      -    -    32  ReLU6 2
112  MBInvRes_k3   32     32    0    16  ReLU6 1
112  MBInvRes_k5   16    106    0    24  ReLU6 2
 56  MBInvRes_k3   24    177    0    24  ReLU6 1
 56  MBInvRes_k5   24    192    0    32  ReLU6 2
 28  MBInvRes_k5   32    249    0    32  ReLU6 1
 28  MBInvRes_k3   32    254    0    32  ReLU6 1
 28  MBInvRes_k3   32    256    0    64  ReLU6 2
 14  MBInvRes_k3   64    512    0    64  ReLU6 1
 14  MBInvRes_k5   64    512    0    64  ReLU6 1
 14  MBInvRes_k3   64    512    0    64  ReLU6 1
 14  MBInvRes_k3   64    512    0    96  ReLU6 1
 14  MBInvRes_k5   96    768    0    96  ReLU6 1
 14  MBInvRes_k3   96    768    0    96  ReLU6 1
 14  MBInvRes_k3   96    768    0    96  ReLU6 1
 14  MBInvRes_k3   96    768    0   160  ReLU6 2
  7  MBInvRes_k5  160   1280    0   160  ReLU6 1
  7  MBInvRes_k5  160   1280    0   160  ReLU6 1
  7  MBInvRes_k3  160   1280    0   160  ReLU6 1
  7  MBInvRes_k3  160   1280    0   320  ReLU6 1
  7  Conv1x1      320      -    -  1280  ReLU6 1
"""

# Table 20: TF-NAS-MBV2-B
_T20 = """
224  Conv3x3        3      -    -    32  ReLU6 2
112  MBInvRes_k3   32     32    0    16  ReLU6 1
112  MBInvRes_k5   16     64    0    24  ReLU6 2
 56  MBInvRes_k5   24     96    0    24  ReLU6 1
 56  MBInvRes_k5   24     96    0    32  ReLU6 2
 28  MBInvRes_k3   32    159    0    32  ReLU6 1
 28  MBInvRes_k5   32    128    0    32  ReLU6 1
 28  MBInvRes_k5   32    153    0    64  ReLU6 2
 14  MBInvRes_k3   64    336    0    64  ReLU6 1
 14  MBInvRes_k5   64    256    0    64  ReLU6 1
 14  MBInvRes_k5   64    256    0    64  ReLU6 1
 14  MBInvRes_k5   64    301    0    96  ReLU6 1
 14  MBInvRes_k3   96    439    0    96  ReLU6 1
 14  MBInvRes_k3   96    459    0    96  ReLU6 1
 14  MBInvRes_k5   96    386    0    96  ReLU6 1
 14  MBInvRes_k3   96    595    0   160  ReLU6 2
  7  MBInvRes_k5  160    852    0   160  ReLU6 1
  7  MBInvRes_k3  160   1004    0   160  ReLU6 1
  7  MBInvRes_k5  160   1037    0   160  ReLU6 1
  7  MBInvRes_k5  160    897    0   320  ReLU6 1
  7  Conv1x1      320      -    -  1280  ReLU6 1
"""


def _arch(
    name: str, title: str, table: int, space: str, flops_m: int, top1: float, block: str
) -> PaperArch:
    return PaperArch(name, title, table, space, flops_m, top1, _parse(block))


# name, title, table, space, FLOPs (M), top-1 (%): Table 4 (Tables 9-18), Table 6 (19-20).
_ARCHS: tuple[PaperArch, ...] = (
    _arch("tfnas-a", "TF-NAS-A", 9, "tfnas", 457, 76.9, _T9),
    _arch("tfnas-b", "TF-NAS-B", 10, "tfnas", 361, 76.3, _T10),
    _arch("tfnas-c", "TF-NAS-C", 11, "tfnas", 284, 75.2, _T11),
    _arch("tfnas-d", "TF-NAS-D", 12, "tfnas", 219, 74.2, _T12),
    _arch("tfnas-a-wose", "TF-NAS-A-wose", 13, "tfnas", 504, 76.5, _T13),
    _arch("tfnas-b-wose", "TF-NAS-B-wose", 14, "tfnas", 433, 76.0, _T14),
    _arch("tfnas-c-wose", "TF-NAS-C-wose", 15, "tfnas", 315, 75.0, _T15),
    _arch("tfnas-d-wose", "TF-NAS-D-wose", 16, "tfnas", 286, 74.0, _T16),
    _arch("tfnas-cpu-a", "TF-NAS-CPU-A", 17, "tfnas", 305, 75.8, _T17),
    _arch("tfnas-cpu-b", "TF-NAS-CPU-B", 18, "tfnas", 230, 74.4, _T18),
    _arch("tfnas-mbv2-a", "TF-NAS-MBV2-A", 19, "mbv2", 445, 75.3, _T19),
    _arch("tfnas-mbv2-b", "TF-NAS-MBV2-B", 20, "mbv2", 297, 73.7, _T20),
)

PAPER_ARCHS: dict[str, PaperArch] = {arch.name: arch for arch in _ARCHS}
