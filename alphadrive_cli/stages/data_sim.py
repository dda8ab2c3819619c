"""``alphadrive data sim``: a labelled driving data set from the highway-env simulator.

Episodes are planned deterministically from the seed (scenario, simulator seed, route, split), run
in worker processes, and cached in the unfinished artifact as they finish, so an interrupted run
resumes without simulating them again. Frames are taken in episode order, so the result does not
depend on the number of workers.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from importlib.metadata import version

import numpy as np
from rich.progress import Progress

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter, OutputSpec, write_json_atomically
from alphadrive_cli.config.schemas import DataConfig
from alphadrive_cli.data.publish import publish_dataset
from alphadrive_cli.data.records import IMAGE_DIR, SPLITS, Record
from alphadrive_cli.data.sampling import balanced_sample
from alphadrive_cli.data.sim.episode import EpisodePlan, EpisodeResult, SimFrame, run_episode
from alphadrive_cli.data.sim.scenarios import SCENARIOS
from alphadrive_cli.ui import console, progress_bar

CACHE_DIR = ".episodes"
SPLIT_CYCLE = 20  # episodes are assigned to splits in shuffled cycles of this length


def split_cycle(config: DataConfig) -> list[str]:
    """A shuffled cycle of split names with the configured proportions (e.g. 16 train, 2 val, 2 test), whose
    first episodes hold one of each split in use: a data set of a few episodes still has every split."""
    fractions = config.split.model_dump()
    counts = {split: math.floor(fractions[split] * SPLIT_CYCLE) for split in SPLITS}
    for split in sorted(SPLITS, key=lambda s: fractions[s] * SPLIT_CYCLE - counts[s], reverse=True):
        if sum(counts.values()) < SPLIT_CYCLE:
            counts[split] += 1
    cycle = [split for split in SPLITS for _ in range(counts[split])]
    random.Random(config.seed).shuffle(cycle)
    for position, split in enumerate(sorted(set(cycle), key=cycle.index)):  # splits by first appearance
        found = cycle.index(split, position)
        cycle[position], cycle[found] = cycle[found], cycle[position]
    return cycle


def empty_splits(config: DataConfig, records: dict[str, list[Record]]) -> list[str]:
    """The splits given a share of the episodes that hold no frame (too few episodes, or every one cut short)."""
    fractions = config.split.model_dump()
    return [split for split in SPLITS if fractions[split] > 0 and not records[split]]


def plan_episodes(config: DataConfig) -> Iterator[EpisodePlan]:
    """The data set's episodes in index order, each fully decided by the seed and its index. An episode's split is
    the split cycle's entry at its index, or with ``split_by_scenario`` at the count of earlier episodes of its
    scenario, so that each scenario's episodes go through the cycle on their own and every split holds the
    scenarios alike."""
    cycle = split_cycle(config)
    weights = {name: weight for name, weight in config.scenarios.model_dump().items() if weight > 0}
    names, probabilities = list(weights), np.array(list(weights.values())) / sum(weights.values())
    seen: Counter[str] = Counter()
    for index in itertools.count():
        rng = np.random.default_rng([config.seed, index])
        scenario = SCENARIOS[str(rng.choice(names, p=probabilities))]
        destination = str(rng.choice(scenario.destinations)) if scenario.destinations else None
        position = seen[scenario.name] if config.split_by_scenario else index
        seen[scenario.name] += 1
        yield EpisodePlan(
            index=index,
            scenario=scenario.name,
            env_seed=int(rng.integers(2**31 - 1)),
            destination=destination,
            split=cycle[position % len(cycle)],
        )


def _simulate(task: tuple[EpisodePlan, DataConfig]) -> EpisodeResult:
    return run_episode(*task)


def image_names(plan: EpisodePlan, frame: SimFrame, config: DataConfig) -> list[str]:
    """Where a frame's PNGs live inside the artifact, one per view in ``render.views`` order."""
    return [f"{IMAGE_DIR}/e{plan.index:05d}_f{frame.frame:02d}_{view}.png" for view in config.render.views]


def _cache_episode(writer: ArtifactWriter, result: EpisodeResult, config: DataConfig) -> None:
    for frame in result.frames:
        for name, png in zip(image_names(result.plan, frame, config), frame.pngs, strict=True):
            writer.path(name).write_bytes(png)
    meta = {
        "plan": asdict(result.plan),
        "crashed": result.crashed,
        "unlabelled_frames": result.unlabelled_frames,
        "frames": [{key: value for key, value in asdict(frame).items() if key != "pngs"} for frame in result.frames],
    }
    write_json_atomically(writer.path(f"{CACHE_DIR}/e{result.plan.index:05d}.json"), meta)  # whole or not at all


def _cached_episode(writer: ArtifactWriter, plan: EpisodePlan) -> EpisodeResult | None:
    cache = writer.dir / CACHE_DIR / f"e{plan.index:05d}.json"
    if not cache.is_file():
        return None
    meta = json.loads(cache.read_text())
    if meta["plan"] != asdict(plan):
        return None
    frames = [SimFrame(pngs=[], **frame) for frame in meta["frames"]]
    return EpisodeResult(plan, frames, meta["crashed"], meta["unlabelled_frames"])


def _episodes(
    writer: ArtifactWriter, config: DataConfig, raw_target: int, progress: Progress
) -> Iterator[EpisodeResult]:
    """Episode results in index order until ``raw_target`` labelled frames were produced."""
    planned = plan_episodes(config)
    task = progress.add_task("simulating", total=raw_target, note="")
    produced = 0
    # a worker that dies raises BrokenProcessPool here instead of hanging the run
    executor = (
        ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn"))
        if config.workers > 1
        else None
    )
    try:
        while produced < raw_target:
            batch_size = max(config.workers * 2, math.ceil((raw_target - produced) / config.frames_per_episode * 1.2))
            plans = list(itertools.islice(planned, batch_size))
            cached = {plan.index: _cached_episode(writer, plan) for plan in plans}
            tasks = [(plan, config) for plan in plans if cached[plan.index] is None]
            fresh = executor.map(_simulate, tasks) if executor else map(_simulate, tasks)
            for plan in plans:
                result = cached[plan.index] or next(fresh)
                if cached[plan.index] is None:
                    _cache_episode(writer, result, config)
                produced += len(result.frames)
                progress.update(task, completed=min(produced, raw_target))
                yield result
                if produced >= raw_target:
                    break
    finally:
        if executor is not None:  # queued episodes nobody needs are cancelled; running ones end, leaving no orphans
            executor.shutdown(wait=True, cancel_futures=True)


def _record(config: DataConfig, plan: EpisodePlan, frame: SimFrame) -> Record:
    return Record(
        id=f"sim{config.seed}-e{plan.index:05d}-f{frame.frame:02d}",
        images=image_names(plan, frame, config),
        navigation=frame.navigation,
        ego_speed_mps=max(0.0, frame.ego_speed_mps),
        speed_action=frame.speed_action,
        path_action=frame.path_action,
        label_source=frame.label_source,
        scene=frame.scene,
        plans=frame.plans,
        source={
            "origin": "simulator",
            "scenario": plan.scenario,
            "episode": plan.index,
            "frame": frame.frame,
            "time_s": frame.time_s,
            "env_seed": plan.env_seed,
            "destination": plan.destination,
        },
    )


def run(config: DataConfig, output: OutputSpec) -> Artifact:
    """Simulate, label, split and publish a ``data`` artifact of ``config.frames`` frames."""
    identity = config.model_dump(mode="json", exclude={"workers"})  # more workers: same data, so resumable
    with output.begin("data", "sim", config.model_dump(mode="json"), identity=identity) as writer:
        raw_target = math.ceil(config.frames * config.balance_oversample) if config.balance else config.frames
        frames: list[tuple[EpisodePlan, SimFrame]] = []
        crashed = unlabelled = episodes = 0
        with progress_bar("frames") as progress:
            for result in _episodes(writer, config, raw_target, progress):
                episodes += 1
                crashed += result.crashed
                unlabelled += result.unlabelled_frames
                frames.extend((result.plan, frame) for frame in result.frames)
        if config.balance:
            frames = balanced_sample(
                frames, lambda item: (item[1].speed_action, item[1].path_action), config.frames, config.seed
            )
        else:
            frames = frames[: config.frames]
        chosen = {name for plan, frame in frames for name in image_names(plan, frame, config)}
        for image in (writer.dir / IMAGE_DIR).glob("*.png"):
            if f"{IMAGE_DIR}/{image.name}" not in chosen:
                image.unlink()
        shutil.rmtree(writer.dir / CACHE_DIR, ignore_errors=True)
        records = {
            split: [_record(config, plan, frame) for plan, frame in frames if plan.split == split] for split in SPLITS
        }
        empty = empty_splits(config, records)
        if empty:
            console.print(
                f"[yellow]note:[/] the {' and '.join(empty)} split(s) hold no frame: {episodes} episode(s) "
                f"were simulated; raise --frames for at least one episode per split"
            )
        return publish_dataset(
            writer,
            records,
            DEFAULT_VOCABULARY,
            seed=config.seed,
            counts={"episodes": episodes, "expert_crashes": crashed, "unlabelled_frames": unlabelled},
            label_rules=config.labels,
            extra={
                "label_rules": config.labels.model_dump(),
                "empty_splits": empty,
                "simulator": {"name": "highway-env", "version": version("highway-env")},
                "expert": "highway-env IDMVehicle (IDM longitudinal, MOBIL lane changes, route following)",
            },
        )
