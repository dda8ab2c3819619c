#!/usr/bin/env bash
# The embedded default pipeline on CPU. It grows with every stage that is built:
# data -> distill -> sft -> grpo -> eval. Today: the tiny offline model.
set -euo pipefail
: "${ALPHADRIVE_HOME:=runs/demo}"
export ALPHADRIVE_HOME

model=$(alphadrive models tiny)
alphadrive show "$model"

echo >&2
echo "demo artifacts are under $ALPHADRIVE_HOME/:" >&2
echo "  model: $model" >&2
