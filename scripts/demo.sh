#!/usr/bin/env bash
# The embedded default pipeline on CPU. It grows with every stage that is built:
# data -> distill -> sft -> grpo -> eval. Today: simulator data, grounded distillation, the tiny offline model, eval.
set -euo pipefail
: "${ALPHADRIVE_HOME:=runs/demo}"
export ALPHADRIVE_HOME

data=$(alphadrive data sim --frames 200 --seed 0 --workers 2)
traces=$(alphadrive distill --data "$data" --teacher grounded)
model=$(alphadrive models tiny)
# sft and grpo are not built yet: until they are, the demo scores the untrained tiny model
report=$(alphadrive eval --model "$model" --data "$data" --set max_new_tokens=32)
alphadrive show "$traces"
alphadrive show "$report"

echo >&2
echo "demo artifacts are under $ALPHADRIVE_HOME/:" >&2
echo "  data:  $data (look at $data/contact_sheet.png)" >&2
echo "  traces: $traces (reasoning from the offline grounded teacher)" >&2
echo "  model: $model (random weights: its scores are the floor, not a result)" >&2
echo "  eval:  $report (metrics.json, predictions.jsonl, confusion_*.png, f1_per_class.png)" >&2
