#!/usr/bin/env bash
# One prepared GPU check (<= 8 min on one GPU): the card, a vLLM eval, 3 ILR steps with two agents, and the
# gpu_vllm bench case. Results and logs go to $OUT (default runs/gpu-check).
#
#   bash experiments/scripts/gpu_wheels.sh            # here, once: wheels (.whl/) and data (.gpudata/) to carry
#   bash experiments/scripts/gpu_check.sh             # on the GPU machine (carry .whl and .gpudata)
#   bash experiments/scripts/gpu_check.sh --cpu       # the same steps at toy sizes on CPU, to test the script
#
# vLLM is used where it imports. A machine without it (its CUDA wheel is too large to carry) runs the eval and
# the ILR steps on the transformers backend instead and says so; the bench case then records why it skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
CPU=0; [ "${1:-}" = "--cpu" ] && CPU=1
OUT="${OUT:-runs/gpu-check}"; mkdir -p "$OUT"
PY="${PY:-python3}"
if [ -d .whl ] && ! $PY -c "import trl, math_verify, pettingzoo" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false TRL_EXPERIMENTAL_SILENCE=1
[ -d .gpudata ] && export ILR_DATA_DIR="${ILR_DATA_DIR:-$PWD/.gpudata}"
log() { echo "[gpu-check $(date +%H:%M:%S)] $*" | tee -a "$OUT/summary.txt"; }
timed() { local t0=$SECONDS; "$@"; local rc=$?; log "  -> exit $rc in $((SECONDS - t0)) s"; return $rc; }

$PY - <<'PY' | tee -a "$OUT/summary.txt"
import platform, torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, GPU: {gpu}")
PY
if $PY -c "import vllm" 2>/dev/null; then BACKEND=vllm; else
  BACKEND=transformers
  log "vLLM does not import here: eval and ILR steps run on the transformers backend instead (reason below)"
  $PY -c "import vllm" 2>&1 | tail -1 | tee -a "$OUT/summary.txt"
fi

if [ $CPU = 1 ]; then
  MODEL=smollm2-135m; LIMIT=4; TOKENS=16; STEPS="max_completion_length: 8
max_stage_tokens: 6
dtype: float32
use_cpu: true
vllm_max_model_length: 1024"
else
  export HF_HUB_OFFLINE=0
  if $PY -c "import urllib.request as u; u.urlopen('https://huggingface.co/api/models/Qwen/Qwen2.5-0.5B-Instruct', timeout=5)" 2>/dev/null; then
    MODEL=Qwen/Qwen2.5-0.5B-Instruct
  else
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    MODEL=tiny  # smollm2-135m needs a 98 MB GGUF wheel (too large to carry); tiny suits the transformers path
    log "the hub is not reachable: the zoo model '$MODEL' stands in for a 0.5-1.5B hub model"
  fi
  LIMIT=64; TOKENS=256; STEPS="max_completion_length: 128
max_stage_tokens: 64
dtype: bfloat16
vllm_memory_fraction: 0.25"
fi
log "model $MODEL, backend $BACKEND"

log "1/3 ilr eval --backend $BACKEND (gsm8k, $LIMIT questions, greedy, $TOKENS tokens)"
timed $PY -m experiments.cli eval --task gsm8k --limit $LIMIT --model "$MODEL" --backend $BACKEND \
  --max-new-tokens $TOKENS --batch-size 64 --no-progress --out "$OUT/eval" 2>"$OUT/eval.log" | tee -a "$OUT/summary.txt"

TRAIN_BACKEND=$BACKEND
if [ $CPU = 1 ]; then TRAIN_BACKEND=transformers; log "CPU: vLLM cannot train here (packed CPU weights), ILR steps on transformers"; fi
log "2/3 three ILR steps, two agents, LoRA, generation_backend: $TRAIN_BACKEND"
cat >"$OUT/train.yaml" <<YAML
models: ["$MODEL", "$MODEL"]
task: math500
train_split: test
train_limit: 16
validation_task: math500
validation_limit: 4
difficulty: level
abilities: [0.5, 0.5]
num_generations: 4
per_device_train_batch_size: 8
max_steps: 3
learning_rate: 1.0e-4
lora: true
lora_r: 8
report_to: [none]
progress: false
output_dir: $OUT/train
generation_backend: $TRAIN_BACKEND
$STEPS
YAML
rm -rf "$OUT/train"
timed $PY -m experiments.cli train --config "$OUT/train.yaml" >"$OUT/train.log" 2>&1
tail -n 5 "$OUT/train.log" | tee -a "$OUT/summary.txt"
$PY - "$OUT/train" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] if (run / "metrics.jsonl").exists() else []
for r in rows:
    if r.get("kind") == "trl":
        keys = ("step_time", "sampling/sampling_logp_difference/max", "sampling/importance_sampling_ratio/mean")
        print(r["agent"], "step", r["step"], {k: round(r[k], 4) for k in keys if k in r})
print("summary:", (run / "train_summary.json").read_text() if (run / "train_summary.json").exists() else "missing")
PY

log "3/3 bench --only gpu_vllm"
timed $PY -m experiments.cli bench --only gpu_vllm --out "$OUT/bench" 2>"$OUT/bench.log" | tee -a "$OUT/summary.txt"
log "done; summary in $OUT/summary.txt"
