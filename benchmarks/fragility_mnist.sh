#!/usr/bin/env bash
# Everything behind docs/fragility.md: synaptic filtering (InferLink) of a narrow ResNet-18, a
# SqueezeNet 1.1 and a ShuffleNetV2 x0.5 trained on real MNIST, 3 initialisations x epochs 1-3,
# local and global analysis, all four filters, clean and FGSM; then the speed measurement of the
# local analysis (ResNet-18, 3 filters x 25 thresholds, clean + fixed FGSM on 1,000 test images).
# Resumable (finished cells are skipped). Usage: make fragility  (or NNF=path/to/nnf bash benchmarks/fragility_mnist.sh)
set -eu
NNF=${NNF:-.venv/bin/nnf}
OUT=${OUT:-results/fragility}
ARCHS=${ARCHS:-"resnet18_imagenet squeezenet1_1_imagenet shufflenet_v2_x0_5_imagenet"}
WORKERS=${WORKERS:-2}
SEEDS=${SEEDS:-"0 1 2"}
mkdir -p "$OUT/models"

width_of() {  # torchvision's layouts (as the paper), narrow: minutes on 2 CPU cores
  case "$1" in resnet18_imagenet) echo 0.25 ;; squeezenet1_1_imagenet) echo 0.5 ;; *) echo 1.0 ;; esac
}

# 1. Models: the default recipe for MNIST (Adam, cosine), 3 epochs on the first 10,000 training
#    images, a model file after every epoch (--save-every 1; epoch 0 is the initialisation).
#    Runs go $WORKERS at a time, one torch thread each.
for arch in $ARCHS; do
  for seed in $SEEDS; do
    model="$OUT/models/$arch-s$seed.safetensors"
    [ -f "$model" ] && continue
    OMP_NUM_THREADS=1 $NNF train --arch "$arch" --arch-arg width="$(width_of "$arch")" --data mnist --epochs 3 \
      --limit 10000 --seed "$seed" --save-every 1 -o "$model" --quiet &
    while [ "$(jobs -rp | wc -l)" -ge "$WORKERS" ]; do sleep 1; done
  done
done
wait

# 2. The layer x epoch picture: every initialisation and epoch in one sweep per architecture.
for arch in $ARCHS; do
  models=(); inits=()
  for seed in $SEEDS; do
    for epoch in 1 2 3; do
      models+=("$OUT/models/$arch-s$seed.epoch$epoch.safetensors")
      inits+=(--init "$OUT/models/$arch-s$seed.epoch0.safetensors")
    done
  done
  SECONDS=0
  $NNF fragility "${models[@]}" "${inits[@]}" --data mnist --filters all \
    --scope both --thresholds 10 --limit-eval 500 --attack fgsm --eps 0.1 --workers "$WORKERS" -o "$OUT/$arch" --quiet
  echo "$arch: sweep of ${#models[@]} models in $SECONDS s" | tee -a "$OUT/timing.txt"
done

# 3. Speed: the local analysis the issue sizes (every Conv/Linear layer x 3 filters x 25 thresholds,
#    clean + fixed FGSM on 1,000 test images), from scratch each time, in one process (2 torch threads).
rm -rf "$OUT/speed-resnet18"
start=$(date +%s.%N)
$NNF fragility "$OUT/models/resnet18_imagenet-s0.epoch3.safetensors" --data mnist --scope local --thresholds 25 \
  --limit-eval 1000 --attack fgsm --eps 0.1 -o "$OUT/speed-resnet18" --quiet
end=$(date +%s.%N)
python3 -c "print(f'speed: local analysis of the narrow ResNet-18 (21 layers x 3 filters x 25 thresholds, 1,000 images + FGSM): {$end - $start:.0f} s')" | tee "$OUT/speed.txt"

# 4. The measured part of docs/fragility.md (tables, figures, timings) from these results.
$(dirname "$NNF")/python benchmarks/fragility_page.py "$OUT" docs/fragility.md
