#!/usr/bin/env bash
# The two-stage generator of issue 20: train both stages on the research corpus (one CPU core each, at once),
# export their generators into citygen/weights (what `citygen generate --ckpt pretrained` loads) and evaluate.
set -euo pipefail
export CITYGEN_RUNS_DIR=${CITYGEN_RUNS_DIR:-runs/two_stage} WANDB_MODE=${WANDB_MODE:-offline} OMP_NUM_THREADS=1
OUT=experiments/two_stage
[ -f data/corpus/tiles.parquet ] || citygen data build --config configs/data/corpus.yaml --out data/corpus --workers 2
# the stage-1 targets (four-way share, orientation order, path share) measured once for every 128 px cell
python -c "from pathlib import Path; from citygen.learn.conditioning import ensure_targets; \
ensure_targets(Path('data/corpus'), 128, ['four_way_share', 'orientation_order', 'path_share'], workers=2)"
citygen fit --config configs/experiments/pix2pix_stage1.yaml > "$OUT/stage1_fit.log" 2>&1 &
citygen fit --config configs/experiments/pix2pix_stage2.yaml > "$OUT/stage2_fit.log" 2>&1 &
wait
for s in 1 2; do
  ckpt=$(ls -t "$CITYGEN_RUNS_DIR"/pix2pix_stage$s/citygen/*/checkpoints/last.ckpt | head -1)
  citygen export-weights --ckpt "$ckpt" --data data/corpus --out citygen/weights/stage$s.pt
done
python "$OUT/plot_curves.py" "$CITYGEN_RUNS_DIR" "$OUT/training_curves.png"
OMP_NUM_THREADS=2 citygen evaluate --ckpt pretrained --max-crops 64 --candidates 4 --workers 2 \
  --json "$OUT/eval_pretrained.json" > "$OUT/eval_pretrained.txt"
for name in low mid high; do
  case $name in
    low) t="--target building_coverage=0.10 --target intersection_density_km2=40 --target green_share=0.15" ;;
    mid) t="--target building_coverage=0.25 --target intersection_density_km2=80 --target green_share=0.10" ;;
    high) t="--target building_coverage=0.40 --target intersection_density_km2=120 --target green_share=0.05" ;;
  esac
  # shellcheck disable=SC2086
  citygen generate --ckpt pretrained $t --n 8 --out "runs/two_stage/generate/$name" > "$OUT/generate_$name.txt"
  cp "runs/two_stage/generate/$name/contact_sheet.png" "$OUT/contact_sheet_${name}_density.png"
done
