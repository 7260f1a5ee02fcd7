"""Markdown reports with PNG figures (matplotlib, Agg backend, about 100 dpi)."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DPI = 100


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> str:
    """Cores, memory and the load average, for every timing reported."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = "?"
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return (
        f"{cores} cores, {memory} RAM, {platform.machine()}, Python {platform.python_version()}, "
        f"1-minute load average {load_average()}"
    )


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0.0 or not math.isfinite(value):
            return format(value, "g")
        magnitude = abs(value)
        if 1.0 <= magnitude < 1e6:  # no exponent: 3 significant digits, at least 1 decimal
            return f"{value:.{max(1, 2 - math.floor(math.log10(magnitude)))}f}"
        return format(value, spec)
    return str(value)


class Report:
    """A markdown document built section by section; figures go next to it."""

    def __init__(self, directory: Path, title: str, started: float | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = [f"# {title}", ""]
        self.figures: list[Path] = []
        self.started = time.perf_counter() if started is None else started

    def heading(self, text: str, level: int = 2) -> None:
        self.lines += [f"{'#' * level} {text}", ""]

    def text(self, *paragraphs: str) -> None:
        for paragraph in paragraphs:
            self.lines += [paragraph, ""]

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(fmt(cell) for cell in row) + " |")
        self.lines.append("")

    @contextmanager
    def figure(
        self, name: str, caption: str, size: tuple[float, float] = (8.0, 4.5)
    ) -> Iterator[Figure]:
        """A new figure; saved as ``name`` (PNG) and linked with ``caption`` on exit."""
        fig = plt.figure(figsize=size, dpi=DPI)
        try:
            yield fig
            fig.tight_layout()
            path = self.directory / name
            fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
        finally:
            plt.close(fig)
        self.figures.append(path)
        self.lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]

    def write(self) -> Path:
        seconds = time.perf_counter() - self.started
        self.lines += [
            "---",
            "",
            f"Generated in {seconds:.0f} s on {machine()} (at the end).",
            "",
        ]
        path = self.directory / "report.md"
        path.write_text("\n".join(self.lines), encoding="utf-8")
        return path
