#!/usr/bin/env bash
# torchvision's resnet18 against a `cnn!` declaration with torchvision's names (src/main.rs):
# make.py saves a random resnet18's state_dict (random running statistics too) and its eval
# logits for two 224x224 images; the Rust program loads the file, writes its logits and saves
# the network again; check.py compares the logits and loads our file with strict=True.
# Needs the peer benchmarks' virtual environment plus torchvision and safetensors:
#   ~/.cache/cnn-bench-venv/bin/python -m pip install torch torchvision safetensors
set -euo pipefail
cd "$(dirname "$0")"
py=${CNN_BENCH_VENV:-$HOME/.cache/cnn-bench-venv}/bin/python
work=$(mktemp -d)
(cd "$work" && "$py" "$OLDPWD/make.py")
cargo build --release --quiet
touch src/main.rs
time cargo build --release --quiet   # the declaring crate alone, dependencies built
./target/release/torchvision-resnet18 "$work/r18.safetensors" "$work/x.bin" "$work/y_cnn.bin" "$work/ours.safetensors"
(cd "$work" && "$py" "$OLDPWD/check.py")
