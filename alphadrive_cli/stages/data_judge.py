"""``alphadrive data judge``: an existing simulator data set with every frame's candidate plans judged.

Each episode is simulated again from its record's provenance (scenario, simulator seed, destination) with the
data set's own settings, which reproduces its frames exactly (``data sim`` is deterministic); a record whose frame
does not come back the same is an error, never a silently different judgement. Judged episodes are kept in the
partial artifact as they finish, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter, OutputSpec, open_artifact, write_json_atomically
from alphadrive_cli.config.schemas import DataConfig, DataJudgeConfig
from alphadrive_cli.data.publish import link_image, publish_dataset
from alphadrive_cli.data.records import SPLITS, Record, dataset_vocabulary, describe_error, iter_split
from alphadrive_cli.data.sim.episode import EpisodePlan, run_episode
from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.ui import progress_bar

CACHE_DIR = "judged_episodes"


def _episode_plans(records: dict[str, list[Record]], data: Artifact) -> dict[int, EpisodePlan]:
    """The episode each record came from, by episode index; imported frames are refused."""
    plans: dict[int, EpisodePlan] = {}
    for split, rows in records.items():
        for record in rows:
            source = record.source
            if source.get("origin") != "simulator":
                raise BadInput(
                    f"{data.path}: record {record.id} is not from the simulator (source.origin "
                    f"{source.get('origin')!r}); only `data sim` data sets can be judged"
                )
            plans[source["episode"]] = EpisodePlan(
                source["episode"], source["scenario"], source["env_seed"], source["destination"], split
            )
    return plans


def _judge_episode(task: tuple[EpisodePlan, DataConfig]) -> dict[str, Any]:
    """Every labelled frame of one episode, by frame index: its labels and speed (to check) and its plans."""
    plan, config = task
    result = run_episode(plan, config)
    return {
        str(frame.frame): {
            "labels": [frame.speed_action, frame.path_action, max(0.0, frame.ego_speed_mps)],
            "plans": frame.plans,
        }
        for frame in result.frames
    }


def _judged(
    writer: ArtifactWriter, plans: dict[int, EpisodePlan], config: DataConfig, workers: int, frames: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each episode's judged frames, from the partial artifact's cache or simulated (``workers`` at a time)."""
    (writer.dir / CACHE_DIR).mkdir(exist_ok=True)
    cached = {index: writer.dir / CACHE_DIR / f"e{index:05d}.json" for index in plans}
    todo = [index for index, path in cached.items() if not path.is_file()]
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    try:
        tasks = [(plans[index], config) for index in todo]
        fresh = executor.map(_judge_episode, tasks) if executor else map(_judge_episode, tasks)
        with progress_bar("episodes") as progress:
            task = progress.add_task("judging", total=len(plans), note=f"{frames} frames")
            for index in [index for index in plans if index not in todo]:
                progress.advance(task)
                yield index, json.loads(cached[index].read_text())
            for index, episode in zip(todo, fresh, strict=True):
                write_json_atomically(cached[index], episode)  # an episode is kept whole or not at all
                progress.advance(task)
                yield index, episode
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _with_plans(record: Record, frame: dict[str, Any] | None) -> Record:
    """``record`` with its judged plans, once its frame is confirmed to have come back the same."""
    expected = [record.speed_action, record.path_action, record.ego_speed_mps]
    if frame is None or frame["labels"] != expected:
        got = "no labelled frame" if frame is None else f"{frame['labels']}"
        raise StageFailure(
            f"record {record.id} does not re-simulate to the same frame (recorded {expected}, simulated {got}): "
            f"the data set was made by another version of the simulator or of alphadrive"
        )
    return Record.model_validate({**record.model_dump(exclude_none=True), "plans": frame["plans"]})


def run(config: DataJudgeConfig, output: OutputSpec, *, data: Path) -> Artifact:
    """Publish a copy of the ``data`` artifact at ``data`` whose every record carries its judged ``plans``."""
    source = open_artifact(data, stage="data")
    vocabulary = dataset_vocabulary(source)
    records = {split: list(iter_split(source, split, vocabulary)) for split in SPLITS}
    plans = _episode_plans(records, source)
    if not plans:
        raise BadInput(f"{source.path} has no records to judge")
    try:
        recorded = DataConfig.model_validate(source.manifest["config"])
    except ValidationError as error:
        raise BadInput(
            f"{source.path}: its recorded `data sim` config does not fit this version: {describe_error(error)}"
        ) from None
    sim_config = recorded.model_copy(update={"judge": True, "judge_rules": config.rules})
    settings = config.model_dump(mode="json")
    identity = {key: value for key, value in settings.items() if key != "workers"}  # more workers: same plans
    with output.begin("data", "judge", settings, inputs={"data": source}, identity=identity) as writer:
        frames = sum(len(rows) for rows in records.values())
        episodes = dict(_judged(writer, plans, sim_config, config.workers, frames))
        judged = {
            split: [_with_plans(row, episodes[row.source["episode"]].get(str(row.source["frame"]))) for row in rows]
            for split, rows in records.items()
        }
        for rows in judged.values():
            for row in rows:
                for image in row.images:
                    link_image(source.path / image, writer.path(image))
        shutil.rmtree(writer.dir / CACHE_DIR, ignore_errors=True)
        return publish_dataset(
            writer,
            judged,
            vocabulary,
            seed=recorded.seed,
            counts={"episodes": len(plans)},
            extra={"judge_rules": config.rules.model_dump()},
        )
