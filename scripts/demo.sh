#!/usr/bin/env bash
# The embedded default pipeline on CPU. It grows with every stage that is built:
# data -> distill -> sft -> grpo -> eval. Today: simulator data and the tiny offline model.
set -euo pipefail
: "${ALPHADRIVE_HOME:=runs/demo}"
export ALPHADRIVE_HOME

data=$(alphadrive data sim --frames 200 --seed 0 --workers 2)
model=$(alphadrive models tiny)
alphadrive show "$data"

echo >&2
echo "demo artifacts are under $ALPHADRIVE_HOME/:" >&2
echo "  data:  $data (look at $data/contact_sheet.png)" >&2
echo "  model: $model" >&2
echo "next stages (distill, sft, grpo, eval) are not built yet; see README.md" >&2
