#!/usr/bin/env bash
# Demo-sized pix2pix runs (configs/experiments/pix2pix_demo.yaml, about 5 CPU minutes each) with the GAN practice
# options of issue 20, evaluated with the realism block. DATA: a dataset built from configs/data/samples.yaml.
set -euo pipefail
DATA=${DATA:-data/processed}
OUT=${OUT:-experiments/gan_practice}
export CITYGEN_RUNS_DIR=${CITYGEN_RUNS_DIR:-runs/gan_practice}
fit() {  # name, extra options
  local name=$1; shift
  citygen fit --config configs/experiments/pix2pix_demo.yaml --data.root "$DATA" --run_name "$name" \
    --trainer.enable_progress_bar false "$@"
  local ckpt
  ckpt=$(ls -t "$CITYGEN_RUNS_DIR/$name"/*/*/checkpoints/last.ckpt | head -1)
  citygen evaluate --ckpt "$ckpt" --data "$DATA" --workers 2 --json "$OUT/eval_$name.json" > "$OUT/eval_$name.txt"
}
fit resize --model.init_args.upsample resize
fit practice --model.init_args.upsample resize --model.init_args.spectral_norm true \
  --model.init_args.gan_mode hinge --model.init_args.diffaugment true
