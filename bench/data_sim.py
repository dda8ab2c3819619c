"""Benchmark `alphadrive data sim`: labelled frames per second, by views and number of worker processes.

Usage: python -m bench.data_sim --frames 5000 --workers 1 2 [--views front bev front,bev] [--image-size 448]
       [--out docs/bench/data_sim.json]
Each run builds a full data artifact (simulation, rendering, PNG encoding, JSONL, contact sheets, label
audit) in a temporary directory and is timed end to end, process start-up of the workers included.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from alphadrive_cli.artifacts.store import OutputSpec, ResumePolicy
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DataConfig
from alphadrive_cli.stages import data_sim
from bench.common import cpu_model
from bench.entry import run_main
from bench.report import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--views", nargs="+", default=["front"], help="render.views of each run, comma-separated")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    rows = []
    runs = [(views.split(","), workers) for views in args.views for workers in args.workers]
    for views, workers in runs:
        render = {"views": views, "image_size": args.image_size}
        config = resolve_config(
            "data",
            DataConfig,
            options={"frames": args.frames, "workers": workers, "render": render, "seed": args.seed},
        )
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            artifact = data_sim.run(config, OutputSpec(Path(root), f"bench-w{workers}", ResumePolicy.RESTART))
            seconds = time.perf_counter() - started
        rows.append(
            {
                "frames": artifact.manifest["counts"]["frames"],
                "views": ",".join(views),
                "workers": workers,
                "seconds": round(seconds, 1),
                "frames_per_s": round(artifact.manifest["counts"]["frames"] / seconds, 2),
                "frames_per_s_per_worker": round(artifact.manifest["counts"]["frames"] / seconds / workers, 2),
                "episodes": artifact.manifest["counts"]["episodes"],
                "expert_crashes": artifact.manifest["counts"]["expert_crashes"],
                "impossible_labels": artifact.manifest["audit"]["impossible"],
                "audit": artifact.manifest["audit"]["checks"],
                "classes": {split: artifact.manifest["classes"][split] for split in ("train", "val", "test")},
                "image_size": args.image_size,
                "seed": args.seed,
            }
        )
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    report(
        ("frames", "views", "workers", "seconds", "frames_per_s", "episodes", "expert_crashes", "impossible_labels"),
        rows,
        args.out,
        machine=machine,
    )


if __name__ == "__main__":
    run_main(main)
