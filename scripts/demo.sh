#!/usr/bin/env bash
# The embedded default pipeline on CPU, every stage: simulator data -> grounded distillation ->
# SFT of the tiny offline model -> GRPO with the planning rewards -> eval, open loop and closed loop.
set -euo pipefail
: "${ALPHADRIVE_HOME:=runs/demo}"
export ALPHADRIVE_HOME

data=$(alphadrive data sim --frames 200 --seed 0 --workers 2)
traces=$(alphadrive distill --data "$data" --teacher grounded)
model=$(alphadrive models tiny)
student=$(alphadrive sft --data "$traces" --model "$model")
policy=$(alphadrive grpo --data "$data" --init "$student")
report=$(alphadrive eval --model "$policy" --data "$data")
drive=$(alphadrive eval --closed-loop --model "$policy" --scenarios highway,intersection --episodes 2 --set closed_loop.seconds=8)
alphadrive show "$report"

echo >&2
echo "demo artifacts are under $ALPHADRIVE_HOME/:" >&2
echo "  data:   $data (look at $data/contact_sheet.png and $data/sheets/, one per class)" >&2
echo "  traces: $traces (reasoning from the offline grounded teacher)" >&2
echo "  model:  $model (random weights, 0.2 M parameters)" >&2
echo "  sft:    $student (all weights trained on the traces; training_curves.png)" >&2
echo "  grpo:   $policy (reward_curves.png, samples.jsonl: what the policy wrote and what it earned)" >&2
echo "  eval:   $report (metrics.json, predictions.jsonl, confusion_*.png, f1_per_class.png)" >&2
echo "  drive:  $drive (closed_loop.json: the policy and the expert on the same seeds; drive.gif)" >&2
echo "A random 0.2 M-parameter model does not learn to plan in a minute on a CPU: expect low rewards and" >&2
echo "accuracy here; docs/grpo.md says what the tiny model does learn and where real numbers come from." >&2
