"""Benchmark the distill teacher client against a loopback server that answers at once.

Usage: python -m bench.distill_client --requests 400 --concurrency 1 8 32 [--out docs/bench/distill_client.json]
Requests carry one 448x448 PNG as a data URL, like real distill requests. The server (tests/support/fault_server.py)
does no work, so the time per request at concurrency 1 bounds the client's own overhead (openai package,
httpx, JSON, our retry/record logic) from above.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from alphadrive_cli.teacher.base import TeacherRequest
from alphadrive_cli.teacher.openai_teacher import OpenAITeacher
from bench.entry import run_main
from bench.report import report
from tests.support.fault_server import FaultServer


def image_url() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (448, 448, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    url = image_url()
    rows = []
    with FaultServer() as server:
        for concurrency in args.concurrency:
            teacher = OpenAITeacher(
                "bench", server.base_url, "EMPTY", timeout_s=30, max_retries=0, concurrency=concurrency
            )
            requests = [
                TeacherRequest(
                    f"k{concurrency}-{i}",
                    f"s{i}",
                    [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image_url", "image_url": {"url": url}},
                                {"type": "text", "text": f"frame {i}"},
                            ],
                        }
                    ],
                    0.7,
                    64,
                )
                for i in range(args.requests)
            ]
            replies = []
            started = time.perf_counter()
            teacher.run_sync(requests, replies.append)
            seconds = time.perf_counter() - started
            ok = sum(reply.outcome == "ok" for reply in replies)
            rows.append(
                {
                    "concurrency": concurrency,
                    "requests": len(replies),
                    "ok": ok,
                    "seconds": round(seconds, 3),
                    "requests_per_s": round(len(replies) / seconds, 1),
                    "ms_per_request": round(1000 * seconds / len(replies), 2),
                    "mean_latency_ms": round(1000 * sum(r.latency_s for r in replies) / len(replies), 2),
                }
            )
    facts = {"cores": os.cpu_count(), "python": platform.python_version(), "image_bytes_base64": len(url)}
    print(" ".join(f"{key}={value}" for key, value in facts.items()))
    report(
        ("concurrency", "requests", "ok", "seconds", "requests_per_s", "ms_per_request", "mean_latency_ms"),
        rows,
        args.out,
        facts=facts,
    )


if __name__ == "__main__":
    run_main(main)
