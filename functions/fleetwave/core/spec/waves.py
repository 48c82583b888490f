"""Wave marks: cumulative sizes that must grow.

``[1, "10%", "50%", "100%"]`` is a one-node canary, then up to 10% of the targets, then up to 50%, then the rest.
Marks of one kind (two counts, two percentages) must grow whatever the fleet; a count next to a percentage can only
be compared once the number of targets is known (``plan``, ``simulate``, a start, or a spec that lists its targets
by ID), and a mark that resolves below the one before it is an error that shows what each mark resolved to. A mark
that resolves to the same number as the one before (a small fleet, rounding) adds no target: it is reported, and
the last wave always takes every target left, so no target is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetwave.core.spec.types import Size


class WaveMarksError(ValueError):
    """Marks that do not grow; ``index`` is the first mark at fault."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def check_marks_grow(marks: Sequence[Size]) -> None:
    """Marks of the same kind must strictly grow (fleet size unknown: mixed neighbours are checked later)."""
    for index in range(1, len(marks)):
        previous, mark = marks[index - 1], marks[index]
        if previous.is_count == mark.is_count and mark.value <= previous.value:
            raise WaveMarksError(
                index, f"{mark} does not grow past waves[{index - 1}] ({previous}); wave sizes are cumulative"
            )


def resolve_wave_sizes(marks: Sequence[Size], target_count: int) -> tuple[list[int], list[str]]:
    """Cumulative marks -> sizes of the non-empty waves; the last wave takes what is left.

    Returns the sizes and the marks that resolved to no new target (reported, never silent). Raises
    WaveMarksError when a mark resolves below the one before it.
    """
    check_marks_grow(marks)
    reaches = [min(target_count, mark.resolve(target_count, rounding="up")) for mark in marks]
    for index in range(1, len(marks)):
        if reaches[index] < reaches[index - 1]:
            resolved = ", ".join(f"{mark}={reach}" for mark, reach in zip(marks, reaches, strict=True))
            raise WaveMarksError(
                index,
                f"{marks[index]} does not grow past waves[{index - 1}] ({marks[index - 1]}): on {target_count} "
                f"targets the marks resolve to {resolved} (wave sizes are cumulative)",
            )
    sizes: list[int] = []
    dropped: list[str] = []
    covered = 0
    for index, mark in enumerate(marks):
        reach = target_count if index == len(marks) - 1 else reaches[index]
        if reach == covered:
            dropped.append(f"waves[{index}] ({mark})")
            continue
        sizes.append(reach - covered)
        covered = reach
    return sizes, dropped
