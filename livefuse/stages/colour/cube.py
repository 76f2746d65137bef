"""Reader for Adobe/Resolve `.cube` 3D LUT files (the format colourists export).

Data lines are `R G B` outputs with red changing fastest, then green, then blue. Only 3D LUTs with the
default 0..1 input domain are accepted; anything else is a PresetError saying what to re-export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livefuse.errors import PresetError

MAX_SIZE = 129


def parse_cube(text: str, where: str = ".cube file") -> np.ndarray:
    """The LUT as float32 [N(blue), N(green), N(red), 3(r, g, b)] with values in 0..1."""
    size = 0
    rows: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key = line.split()[0].upper()
        if key == "TITLE":
            continue
        if key == "LUT_1D_SIZE":
            raise PresetError(f"{where}: line {number}: 1D LUTs are not supported; export a 3D LUT (LUT_3D_SIZE)")
        if key == "LUT_3D_SIZE":
            try:
                size = int(line.split()[1])
            except (IndexError, ValueError) as exc:
                raise PresetError(f"{where}: line {number}: LUT_3D_SIZE needs a whole number") from exc
            if not 2 <= size <= MAX_SIZE:
                raise PresetError(f"{where}: line {number}: LUT_3D_SIZE {size} is outside 2..{MAX_SIZE}")
            continue
        if key in ("DOMAIN_MIN", "DOMAIN_MAX"):
            values = [float(v) for v in line.split()[1:4]]
            default = [0.0] * 3 if key == "DOMAIN_MIN" else [1.0] * 3
            if values != default:
                raise PresetError(
                    f"{where}: line {number}: {key} {values} is not supported; export the LUT for the 0..1 input range"
                )
            continue
        if key[0].isalpha():
            continue  # other keywords (LUT_3D_INPUT_RANGE with defaults, vendor tags) carry no data
        try:
            values = [float(v) for v in line.split()]
        except ValueError as exc:
            raise PresetError(f"{where}: line {number}: expected three numbers, got {line!r}") from exc
        if len(values) != 3:
            raise PresetError(f"{where}: line {number}: expected three numbers, got {line!r}")
        rows.append(values)
    if size == 0:
        raise PresetError(f"{where}: no LUT_3D_SIZE line; is this a 3D .cube LUT?")
    if len(rows) != size**3:
        raise PresetError(
            f"{where}: LUT_3D_SIZE {size} needs {size**3} data lines, found {len(rows)}; "
            f"the file is truncated or malformed"
        )
    return np.clip(np.asarray(rows, np.float32), 0.0, 1.0).reshape(size, size, size, 3)


def load_cube(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise PresetError(
            f"colour stage: lut = {str(path)!r} cannot be read ({exc.strerror}); give the path of "
            f"a .cube file, relative to the preset"
        ) from exc
    return parse_cube(text, str(path))


def write_cube(path: Path, lut: np.ndarray, title: str = "") -> None:
    """Write a [N, N, N, 3] LUT (blue, green, red major order, rgb values) as a .cube file."""
    size = lut.shape[0]
    lines = [f'TITLE "{title}"'] if title else []
    lines.append(f"LUT_3D_SIZE {size}")
    lines += [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in lut.reshape(-1, 3)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def identity_cube(size: int) -> np.ndarray:
    """The LUT that changes nothing."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1)
