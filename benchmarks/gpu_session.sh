#!/usr/bin/env bash
# One GPU session: the measurements that need a CUDA device, in one go (about 10 minutes).
# Carry: .whl (PyAV and diffusers wheels for Python 3.12) and .bench (a 540p clip, converted
# official weights). Results land in $OUT (default ./gpu-results).
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 REELFORGE_MODELS__CACHE_DIR=$PWD/.bench/models
{ nvidia-smi -L; nproc; python3 -c "import torch, av, diffusers, transformers; print(torch.__version__, av.__version__, diffusers.__version__, transformers.__version__)"; } 2>&1 | tee "$OUT/env.log"
echo "== super-resolution" | tee -a "$OUT/env.log"
timeout 300 python3 -m benchmarks.sr_throughput --device cuda --rounds 3 --frames 256 --e2e .bench/clip540p.mp4 \
  --e2e-frames 270 --json "$OUT/sr.json" --out /tmp/sr 2>&1 | grep -v -E "^(0\.00%|\s*warnings\.warn)" | tee "$OUT/sr.log"
echo "== super-resolution model stage (eager vs torch.compile)" | tee -a "$OUT/env.log"
timeout 300 python3 -m benchmarks.sr_model_stage 2>&1 | grep -v -E "^\s*warnings\.warn" | tee "$OUT/sr_stage.log"
echo "== keyframe plumbing overhead" | tee -a "$OUT/env.log"
timeout 180 python3 -m benchmarks.synth_gpu 2>&1 | tail -20 | tee "$OUT/synth.log"
echo "== local LLM device" | tee -a "$OUT/env.log"
timeout 60 python3 -m benchmarks.script_local_gpu 2>&1 | grep -v "Loading weights" | tail -6 | tee "$OUT/script.log"
