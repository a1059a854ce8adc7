#!/usr/bin/env bash
# Side by side: our bench example, PyTorch and ONNX Runtime (../shared/bench) on LeNet-5 or
# ResNet-8, interleaved over several rounds in one run; prints medians and the ratios.
#
#   scripts/compare.sh [--net lenet5|resnet8] [--rounds 5] [--secs 1.0] [--threads "1 2"]
#
# The peer scripts set up their Python environment on first use (see ../shared/bench/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${CNN_SHARED:-$here/../shared}
rounds=5; secs=1.0; threads="1 2"; net=lenet5
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2;;
    --secs) secs=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --net) net=$2; shift 2;;
    *) echo "unknown argument $1; expected --net, --rounds, --secs, --threads" >&2; exit 2;;
  esac
done
cd "$here"
cargo build --release --example bench >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  echo "round $r of $rounds" >&2
  "${CARGO_TARGET_DIR:-target}/release/examples/bench" --json --net "$net" --threads "$threads" --secs "$secs" >>"$out"
  "$shared/bench/run.sh" --net "$net" --threads "$threads" --secs "$secs" >>"$out"
done
python3 - "$out" "$net" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rows = [r for r in rows if r.get("net", "lenet5") == sys.argv[2]]
print(f"network: {sys.argv[2]}")
keys = ["infer_b1_us", "infer_b64_img_s", "train_b64_ms", "train_b64_img_s"]
med = {}
for r in rows:
    k = (r["system"], r["threads"])
    for m in keys:
        if r.get(m) is not None:
            med.setdefault(k, {}).setdefault(m, []).append(r[m])
med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in med.items()}
print(f"{'system':<12} {'threads':>7} {'infer b1 (us)':>14} {'infer b64 img/s':>16} {'train b64 (ms)':>15}")
for (s, t), d in sorted(med.items(), key=lambda x: (str(x[0][1]), x[0][0])):
    f = lambda m, fmt: format(d[m], fmt) if m in d else "-"
    print(f"{s:<12} {t:>7} {f('infer_b1_us', '.1f'):>14} {f('infer_b64_img_s', '.0f'):>16} {f('train_b64_ms', '.2f'):>15}")
print()
for t in sorted({t for _, t in med}, key=str):
    ours, ort, torch = med.get(("cnn", t), {}), med.get(("onnxruntime", t), {}), med.get(("pytorch", t), {})
    def ratio(a, b, m):
        return f"{a[m] / b[m]:.2f}x" if m in a and m in b else "-"
    print(f"{t} thread(s): batch-1 latency vs ONNX Runtime {ratio(ours, ort, 'infer_b1_us')} (lower is better), "
          f"batch-64 inference throughput vs ONNX Runtime {ratio(ours, ort, 'infer_b64_img_s')}, "
          f"training throughput vs PyTorch {ratio(ours, torch, 'train_b64_img_s')}")
PY
