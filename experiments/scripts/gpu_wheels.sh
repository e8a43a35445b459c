#!/usr/bin/env bash
# Prepares what experiments/scripts/gpu_check.sh needs on a GPU machine that has no network: pure-Python wheels
# for CPython 3.12 (.whl/, installed there into /tmp/site) and the benchmark files the check reads
# (.gpudata/). Run here, in the repository root; both folders are git-ignored (.git/info/exclude).
# The GPU machine already has torch, transformers, accelerate and peft. vLLM's CUDA wheel is far larger
# than what can travel, so gpu_check.sh falls back to the transformers backend there and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${ILR_DATA_DIR:-../shared/data}"
exclude="$(git rev-parse --git-common-dir)/info/exclude"
for folder in /.whl/ /.gpudata/; do grep -qxF "$folder" "$exclude" 2>/dev/null || echo "$folder" >>"$exclude"; done
rm -rf .whl .gpudata && mkdir -p .whl .gpudata
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 math-verify==0.9.0 \
  latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 pettingzoo==1.27.0 gymnasium==1.4.0 \
  farama-notifications==0.0.6
cp "$DATA_DIR"/gsm8k.jsonl "$DATA_DIR"/gsm8k_train.jsonl "$DATA_DIR"/math500.jsonl "$DATA_DIR"/README.md .gpudata/
du -sh .whl .gpudata
