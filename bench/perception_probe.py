"""Does a model see what its images show? Its answers to the perception question, from own and other frames' images.

Usage: python -m bench.perception_probe MODEL DATA [--split test] [--batch-size 32] [--max-new-tokens 96] [--out FILE]

MODEL is a model trained with `sft.perception_examples` (any model artifact or directory `eval` takes). For each
frame of the split whose scene facts one image shows, it answers prompts/perception-v1.txt (its images alone: no
speed, no instruction; greedy) twice: from its own images, and from another frame's (the fixed derangement of
`eval --set images=shuffled`). Both answers and the frame's perception target (what `sft` taught on train frames)
are read back through the grounded phrasings (evaluation/reasoning_facts.py), fact by fact. Prints each fact's
right rate with own and with other frames' images beside the rate of always stating the train split's most frequent
state, and the median absolute error of the lead's gap and the junction's distance where the answer states one,
beside that of always stating the train split's median. A vision tower that sees the scene scores above those
baselines with its own images and falls to about them with other frames'.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, ProcessorMixin

from alphadrive_cli.artifacts.store import Artifact, open_artifact
from alphadrive_cli.data.records import Record, dataset_vocabulary, iter_split
from alphadrive_cli.evaluation.reasoning_facts import NUMERIC_VALUES, claimed_facts, phrase_patterns
from alphadrive_cli.models.generation import GenerationSettings, complete_conversations, load_for_generation
from alphadrive_cli.models.loading import resolve_model_source
from alphadrive_cli.prompts import PERCEPTION_PROMPT, load_prompt, scene_phrasing, user_turn
from alphadrive_cli.stages.eval_open_loop import DATA_STAGES, with_shuffled_images
from alphadrive_cli.training.sft_data import perception_target
from alphadrive_cli.ui import progress_bar
from bench.entry import run_main
from bench.report import report

Facts = dict[str, tuple[str, dict[str, str]]]


def described_records(data: Artifact, split: str) -> list[tuple[Record, str]]:
    """The split's records whose scene facts one image shows (those `sft.perception_examples` teaches), each with
    its perception target."""
    targets = ((record, perception_target(record)) for record in iter_split(data, split, dataset_vocabulary(data)))
    return [(record, target) for record, target in targets if target]


def target_facts(described: Sequence[tuple[Record, str]]) -> list[Facts]:
    """Each perception target read back as facts: what a right answer states."""
    patterns = phrase_patterns(scene_phrasing())
    return [claimed_facts(target, patterns) for _, target in described]


def answers(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    data_root: Path,
    records: Sequence[Record],
    batch_size: int,
    max_new_tokens: int,
) -> list[str]:
    """The model's greedy answer to the perception question for each record, from the record's images."""
    question = load_prompt(PERCEPTION_PROMPT).render()
    settings = GenerationSettings(max_new_tokens)
    texts: list[str] = []
    with progress_bar("frames") as progress:
        task = progress.add_task("answering", total=len(records), note="")
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            conversations = [user_turn(question, len(record.images)) for record in batch]
            paths = [record.images for record in batch]
            completions = complete_conversations(model, processor, conversations, paths, data_root, settings)
            texts += [rows[0] for rows in completions]
            progress.update(task, advance=len(batch))
    return texts


def fact_scores(truths: Sequence[Facts], texts: Sequence[str], train: Sequence[Facts]) -> dict[str, dict[str, Any]]:
    """Per fact the targets state: frames, the share the texts state right and the share that always stating the
    train targets' most frequent state gets right; for a fact with a number (the lead's gap, the junction's
    distance), the median absolute error where a text states one, beside that of always stating the train
    targets' median."""
    patterns = phrase_patterns(scene_phrasing())
    claims = [claimed_facts(text, patterns) for text in texts]
    scores: dict[str, dict[str, Any]] = {}
    for fact in sorted({fact for truth in truths for fact in truth}):
        pairs = [(truth[fact], claim.get(fact)) for truth, claim in zip(truths, claims, strict=True) if fact in truth]
        majority = Counter(facts[fact][0] for facts in train if fact in facts).most_common(1)
        scores[fact] = {
            "frames": len(pairs),
            "right_rate": round(sum(c is not None and c[0] == t[0] for t, c in pairs) / len(pairs), 4),
            "majority_rate": round(sum(bool(majority) and t[0] == majority[0][0] for t, _ in pairs) / len(pairs), 4),
        }
        if (key := NUMERIC_VALUES.get(fact)) is None:
            continue
        numbered = [(float(t[1][key]), c) for t, c in pairs if key in t[1]]
        stated = [abs(float(c[1][key]) - value) for value, c in numbered if c is not None and c[1].get(key)]
        typical = [float(facts[fact][1][key]) for facts in train if fact in facts and key in facts[fact][1]]
        if stated and typical:
            median = statistics.median(typical)
            scores[fact].update(
                number_frames=len(stated),
                median_abs_error=round(statistics.median(stated), 2),
                train_median_abs_error=round(statistics.median(abs(median - value) for value, _ in numbered), 2),
            )
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model trained with sft.perception_examples")
    parser.add_argument("data", type=Path, help="the data artifact it was trained on")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = open_artifact(args.data, DATA_STAGES)
    described = described_records(data, args.split)
    records = [record for record, _ in described]
    truths = target_facts(described)
    train = target_facts(described_records(data, "train"))
    model, processor, _ = load_for_generation(resolve_model_source(args.model), compile_generation=False)
    results = {
        images: fact_scores(
            truths, answers(model, processor, data.path, planned, args.batch_size, args.max_new_tokens), train
        )
        for images, planned in (("own", records), ("shuffled", with_shuffled_images(records)))
    }
    rows = [
        {
            "fact": fact,
            "frames": scores["frames"],
            "right, own images": scores["right_rate"],
            "right, other frames' images": results["shuffled"][fact]["right_rate"],
            "right, train's most frequent state": scores["majority_rate"],
            "number's median abs error m, own / other / train median": (
                f"{scores['median_abs_error']} / {results['shuffled'][fact].get('median_abs_error', '–')} / "
                f"{scores['train_median_abs_error']}"
                if "median_abs_error" in scores
                else "–"
            ),
        }
        for fact, scores in results["own"].items()
    ]
    columns = list(rows[0]) if rows else ["fact"]
    command = f"python -m bench.perception_probe {args.model} {args.data} --split {args.split}"
    report(columns, rows, args.out, command=command, frames=len(records), results=results)


if __name__ == "__main__":
    run_main(main)
