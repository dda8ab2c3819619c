#!/usr/bin/env bash
# The embedded default pipeline on CPU. It grows with every stage that is built:
# data -> distill -> sft -> grpo -> eval. Today: simulator data, grounded distillation, SFT of the tiny
# offline model (LoRA on CPU), eval.
set -euo pipefail
: "${ALPHADRIVE_HOME:=runs/demo}"
export ALPHADRIVE_HOME

data=$(alphadrive data sim --frames 200 --seed 0 --workers 2)
traces=$(alphadrive distill --data "$data" --teacher grounded)
model=$(alphadrive models tiny)
student=$(alphadrive sft --data "$traces" --model "$model")
# grpo is not built yet: until it is, the demo scores the SFT student
report=$(alphadrive eval --model "$student" --data "$data" --set max_new_tokens=64)
alphadrive show "$report"

echo >&2
echo "demo artifacts are under $ALPHADRIVE_HOME/:" >&2
echo "  data:  $data (look at $data/contact_sheet.png)" >&2
echo "  traces: $traces (reasoning from the offline grounded teacher)" >&2
echo "  model: $model (random weights)" >&2
echo "  sft:   $student (LoRA adapter, training_curves.png; a 0.2 M-parameter model learns little in one epoch)" >&2
echo "  eval:  $report (metrics.json, predictions.jsonl, confusion_*.png, f1_per_class.png)" >&2
