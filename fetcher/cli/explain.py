"""``explain``: how each model would be fetched, without downloading anything."""

from __future__ import annotations

import json
from typing import TextIO

from fetcher.sources.base import ModelPlan


def print_plans(plans: list[ModelPlan], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        json.dump([plan.explain() for plan in plans], out, indent=2)
        out.write("\n")
        return
    if not plans:
        out.write("The lease names no models.\n")
    for plan in plans:
        fields = plan.explain()
        out.write(f"{fields['name']}\n")
        for key in ("uri", "source", "repository", "location", "secret", "reason"):
            value = fields[key]
            out.write(f"  {key + ':':<12}{value if value is not None else '-'}\n")
