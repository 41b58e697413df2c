#!/usr/bin/env bash
# The GPU check of issue 15, for a Linux machine with an NVIDIA GPU and no network. Prepared on a
# CPU machine and not yet run: no GPU was available when it was written (docs/devices.md).
#
#   bench/gpu_check.sh BUNDLE [PACKAGE.tgz...]
#
# BUNDLE       recsysllm-VERSION-linux-x64.tar.xz from `deno task bundle --bench` (a little over
#              42 MB: the xz-compressed deno, onnxruntime's linux-x64 library, the toolkit, bench/
#              and the Beauty data the infer benchmark reads).
# PACKAGE.tgz  the CUDA runtime's npm package files, for setup-cuda --from (`npm pack
#              onnxruntime-node@1.29.0 onnxruntime-common@1.29.0
#              com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9`; the last is 179 MB, so it may
#              have to be carried in pieces and joined with cat first). Without them only WebGPU
#              and the CPU are measured.
#
# It unpacks the bundle into a fresh directory, puts CUDA 13's libraries on LD_LIBRARY_PATH where
# pip's nvidia-*-cu13 wheels keep them (site-packages/nvidia/*/lib), installs the CUDA runtime with
# setup-cuda, runs the forward, train and infer benchmarks on cpu, cuda and webgpu (a device that
# cannot load prints its one-line error and the check goes on), then the parity check (logits,
# one training step's updated tensors, the top-10 items, GPU against CPU to float32 tolerance),
# and prints every figure as JSON lines plus a short table. Results also go to $OUT/gpu_check/
# when OUT is set (the device tool's output folder).
set -uo pipefail

bundle=${1:?usage: bench/gpu_check.sh BUNDLE [PACKAGE.tgz...]}
shift
packages=("$@")
work=$(mktemp -d)
results=${OUT:-$work}/gpu_check
mkdir -p "$results"
log() { echo "gpu_check: $*" >&2; }

log "unpacking $bundle"
tar xf "$bundle" -C "$work" || exit 1
recsysllm=$(echo "$work"/recsysllm-*/recsysllm)
[ -x "$recsysllm" ] || { log "no launcher in $bundle"; exit 1; }
"$recsysllm" --version
export DENO_DIR="$work/deno-dir" NO_COLOR=1 # a fresh cache: nothing from an earlier run

(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true) |
  tee "$results/gpu.txt"

# CUDA 13 from pip wheels (nvidia-cublas-cu13, nvidia-cuda-runtime-cu13, ...).
nv_dirs=$(find /usr /opt /root /home -type d \( -path '*-packages/nvidia/*/lib' \) 2>/dev/null |
  sort | tr '\n' ':')
export LD_LIBRARY_PATH="${nv_dirs}${LD_LIBRARY_PATH:-}"
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

if [ ${#packages[@]} -gt 0 ]; then
  from=()
  for p in "${packages[@]}"; do from+=(--from "$p"); done
  "$recsysllm" setup-cuda "${from[@]}" | tee "$results/setup_cuda.json"
fi

# GPU_CHECK_DEVICES and GPU_CHECK_BENCHES narrow the run (a dry run on a CPU machine, say).
for device in ${GPU_CHECK_DEVICES:-cpu cuda webgpu}; do
  for bench in ${GPU_CHECK_BENCHES:-forward train infer}; do
    log "bench $bench --device $device"
    if ! "$recsysllm" bench "$bench" --device "$device" >>"$results/bench.jsonl" \
      2>"$results/$bench-$device.err"; then
      error=$(grep -m1 -o 'device .* cannot be used.*' "$results/$bench-$device.err" ||
        tail -n1 "$results/$bench-$device.err")
      echo "{\"bench\":\"$bench\",\"device\":\"$device\",\"error\":$(printf '%s' "$error" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))' 2>/dev/null || echo '"failed"')}" \
        >>"$results/bench.jsonl"
      [ "$bench" = forward ] && break # the device does not load: skip its other benchmarks
    fi
  done
done
for device in ${GPU_CHECK_DEVICES:-cpu cuda webgpu}; do
  [ "$device" = cpu ] && continue
  log "parity --device $device"
  "$recsysllm" bench parity --device "$device" >>"$results/parity.jsonl" \
    2>"$results/parity-$device.err" ||
    log "parity on $device failed: $(grep -m1 -o 'device .* cannot be used.*' "$results/parity-$device.err" ||
      tail -n1 "$results/parity-$device.err")"
done

cat "$results/bench.jsonl" "$results/parity.jsonl" 2>/dev/null
python3 - "$results" <<'EOF' || true
import json, sys, os
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, "bench.jsonl")) if l.strip()]
head = {"forward": "tokens_per_s", "train": "tokens_per_s", "infer": "users_per_s"}
cpu = {r["bench"]: r for r in rows if r.get("device") == "cpu" and "error" not in r}
print("\n| bench | device | figure | value | vs cpu | GPU share of kernel time |")
print("|---|---|---|---:|---:|---:|")
for r in rows:
    b, dev = r["bench"], r.get("device")
    if "error" in r:
        print(f"| {b} | {dev} | error | {r['error'][:80]} | | |")
        continue
    k = head[b]
    base = cpu.get(b, {}).get(k)
    ratio = f"{r[k] / base:.2f}x" if base else ""
    prov = r.get("loss_providers") or r.get("lora_providers") or {}
    gpu = sum(v["share"] for p, v in prov.items() if p != "CPUExecutionProvider")
    print(f"| {b} | {dev} | {k} | {r[k]} | {ratio} | {gpu:.3f} |" if prov else f"| {b} | {dev} | {k} | {r[k]} | {ratio} | |")
p = os.path.join(d, "parity.jsonl")
if os.path.exists(p):
    for l in open(p):
        r = json.loads(l)
        print(f"\nparity {r['device']}: logits max_abs {r['forward_logits']['max_abs']:.3g}, "
              f"train step max_abs {r['train_step_updated']['max_abs']:.3g}, "
              f"top-10 identical {r['top10']['identical_lists']}, overlap {r['top10']['overlap']}, "
              f"within float32 tolerance: {r['within_tolerance']}")
EOF
