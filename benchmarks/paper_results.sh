#!/usr/bin/env bash
# Everything behind docs/results.md: the paper's Tables 1-4 (two narrow networks trained on
# real MNIST, four attacks, 10 seeds) and Fig. 7 (Uchida watermark on LeNet, 5 seeds).
# Resumable: run it again after an interruption and finished cells are skipped.
# About 3 hours on 2 CPU cores.  Usage:  make results   (or NNF=path/to/nnf bash benchmarks/paper_results.sh)
set -eu
NNF=${NNF:-.venv/bin/nnf}
PY=${PY:-$(dirname "$NNF")/python}
OUT=${OUT:-results}
mkdir -p "$OUT"

# 1. Models: VGG-16-bn and ResNet-18 (CIFAR stems) at width 1/4, 8 epochs of SGD on MNIST.
for arch in vgg16_bn resnet18; do
  [ -f "$OUT/$arch-mnist.safetensors" ] || $NNF train --arch $arch --arch-arg width=0.25 --data mnist \
    --optimizer sgd --lr 0.05 --momentum 0.9 --nesterov --weight-decay 5e-4 --batch-size 128 --epochs 8 --schedule step \
    --no-augment --init-seed 0 --data-seed 0 -o "$OUT/$arch-mnist.safetensors" --json --quiet
done

# 2. Tables 1-4: permute one target layer, attack, re-synchronize (lap, argmax, rank).
# The target is the penultimate conv, except for the ResNet under the attacks that change the
# target layer alone (noise, pruning): its penultimate conv (layer4.1.conv2) shares its
# permutation group with the whole residual stream of layer4, whose untouched layers would give
# the permutation away, so there the target is the last conv that owns its neurons
# (layer4.1.conv1). Fine-tuning and quantization change every layer of the group.
target_of() {  # target_of ARCH ATTACK
  case "$1:$2" in resnet18:noise|resnet18:prune) echo layer4.1.conv1 ;; *) echo penultimate ;; esac
}
sweep() {  # sweep ARCH ATTACK
  local levels=""
  [ "$2" = prune ] && levels="--levels 0,0.9,0.91,0.92,0.93,0.94,0.95,0.96,0.97,0.98,0.99"
  $NNF robustness "$OUT/$1-mnist.safetensors" --data mnist --attack $2 $levels --seeds 10 \
    --methods lap,argmax,rank --target "$(target_of $1 $2)" --workers 2 --quiet -o "$OUT/$1-$2"
}
for attack in noise prune quantize; do
  for arch in vgg16_bn resnet18; do sweep $arch $attack; done
done
sweep vgg16_bn finetune

# 3. Fig. 7: a LeNet watermarked in fc1 (64 bits); every group permuted, then attacked.
[ -f "$OUT/lenet-mnist.safetensors" ] || $NNF train --arch lenet --data mnist --optimizer sgd --lr 0.05 --nesterov \
  --momentum 0.9 --weight-decay 5e-4 --batch-size 128 --epochs 8 --schedule cosine --no-augment \
  -o "$OUT/lenet-mnist.safetensors" --json --quiet
[ -f "$OUT/lenet-marked.safetensors" ] || $NNF watermark embed "$OUT/lenet-mnist.safetensors" --data mnist \
  --layer fc1 --bits 64 --key-seed 2024 --key-out "$OUT/lenet-wm-key.json" -o "$OUT/lenet-marked.safetensors" \
  --json --quiet
for attack in noise finetune quantize prune; do
  levels=""
  [ "$attack" = noise ] && levels="--levels 0,1,2,3,4,5,6"
  [ "$attack" = prune ] && levels="--levels 0,0.9,0.93,0.95,0.97,0.99"
  [ "$attack" = quantize ] && levels="--levels 16,8,6,4,3,2"
  $NNF robustness "$OUT/lenet-marked.safetensors" --data mnist --attack $attack $levels --seeds 5 \
    --methods lap,argmax --watermark-key "$OUT/lenet-wm-key.json" --workers 2 --quiet -o "$OUT/lenet-wm-$attack"
done

# 4. Noise on every layer, every group permuted (the attack the paper's Table 1 leaves out), 5 seeds.
# Both networks are at chance from Omega = 1, so the low levels get a sweep of their own.
for arch in vgg16_bn resnet18; do
  $NNF robustness "$OUT/$arch-mnist.safetensors" --data mnist --attack noise --seeds 5 \
    --methods lap,argmax,rank --workers 2 --quiet -o "$OUT/$arch-noise-all"
  $NNF robustness "$OUT/$arch-mnist.safetensors" --data mnist --attack noise --levels 0.25,0.5,0.75 --seeds 5 \
    --methods lap,argmax,rank --workers 2 --quiet -o "$OUT/$arch-noise-all-low"
done

# 5. The pitfall the ResNet target avoids: noise on layer4.1.conv2 alone, whose group (the
# residual stream of layer4) keeps its other layers untouched (nnf robustness warns about it).
$NNF robustness "$OUT/resnet18-mnist.safetensors" --data mnist --attack noise --seeds 10 \
  --methods lap,argmax,rank --target penultimate --workers 2 --quiet -o "$OUT/resnet18-noise-residual-stream"

# 6. The slowest sweep last.
sweep resnet18 finetune

# 7. The page.
RESULTS="$OUT" "$PY" docs/make_results.py
