#!/usr/bin/env bash
# The corpus experiment of issue 17, end to end (about 1.5 hours on 2 CPU cores). Run from the repository root.
set -euo pipefail
export WANDB_MODE=${WANDB_MODE:-offline}
citygen data build --config configs/data/corpus.yaml --out data/corpus --workers 2
citygen fit --config configs/experiments/ae_corpus.yaml --data.root data/corpus
CKPT=$(ls -t runs/ae_corpus/*/*/checkpoints/last.ckpt | head -1)
citygen embed --ckpt "$CKPT" --data data/corpus --out runs/corpus/embeddings.parquet --workers 2
citygen embed --ckpt "$CKPT" --data data/corpus --out runs/corpus/control.parquet --workers 2 --control random
citygen compare --embeddings runs/corpus/embeddings.parquet --control runs/corpus/control.parquet \
    --groups configs/compare/groups.yaml --out runs/corpus/compare
citygen evaluate --ckpt "$CKPT" --json experiments/corpus/eval.json --workers 1
