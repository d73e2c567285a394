"""Free disk before a workload runs: what its data and the largest tool run need, against what the workdir has.

A workload that does not fit is skipped with the figures, instead of a tool or the generator failing
part way with ENOSPC (and leaving the disk full for whatever else runs on the machine).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.workloads import Workload, describe_size

DEFAULT_MARGIN_GIB = 1.0  # logs, the fetcher's staging files, rounding in the estimates


@dataclass(frozen=True)
class DiskNeed:
    data_bytes: int  # the copies about to be written: the S3 prefix, the zip
    tool_peak_bytes: int  # the most one tool run may hold at once: its output, and a downloaded zip beside it
    margin_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.data_bytes + self.tool_peak_bytes + self.margin_bytes

    def describe(self) -> str:
        return (f"data {describe_size(self.data_bytes)} + largest tool run {describe_size(self.tool_peak_bytes)} "
                f"+ margin {describe_size(self.margin_bytes)}")


def disk_need(workload: Workload, transports: list[str], archive_kept: bool, margin_bytes: int) -> DiskNeed:
    """What writing ``workload``'s data for ``transports`` and running its tools takes.

    Over S3 a tool's output is the model. Over HTTPS the fetcher streams the zip into place (the model
    again), while a tool that downloads the zip first (``archive_kept``) holds the zip beside the model.
    """
    model = workload.allocated_bytes
    data, peak = 0, 0
    if "s3" in transports:
        data += model
        peak = max(peak, model)
    if "https" in transports:
        zip_bytes = workload.estimated_zip_bytes
        data += zip_bytes
        peak = max(peak, model + (zip_bytes if archive_kept else 0))
    return DiskNeed(data_bytes=data, tool_peak_bytes=peak, margin_bytes=margin_bytes)


def shortfall(workdir: Path, need: DiskNeed) -> str | None:
    """None when ``workdir``'s filesystem has room for ``need`` now, else why the workload is skipped."""
    free = shutil.disk_usage(workdir).free
    if free >= need.total_bytes:
        return None
    return (f"skipped: needs {describe_size(need.total_bytes)} free ({need.describe()}), "
            f"{describe_size(free)} available")
