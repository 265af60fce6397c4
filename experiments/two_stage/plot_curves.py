"""Training curves of the two stages from their Lightning CSV logs (runs/two_stage/<stage>/citygen/<run>/metrics.csv).

python experiments/two_stage/plot_curves.py [RUNS_DIR] [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

RUNS = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/two_stage")
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).with_name("training_curves.png"))
PANELS = {
    "pix2pix_stage1": ["train/l1", "train/dice", "train/loss_d", "train/loss_g_gan", "train/target_l1", "val/l1"],
    "pix2pix_stage2": [
        "train/l1",
        "train/dice",
        "train/loss_d",
        "train/loss_g_gan",
        "val/iou_buildings",
        "val/iou_green",
    ],
}

fig, axes = plt.subplots(2, 6, figsize=(20, 6), layout="constrained")
for row, (stage, keys) in zip(axes, PANELS.items(), strict=True):
    csv = sorted((RUNS / stage).glob("citygen/*/metrics.csv"), key=lambda p: p.stat().st_mtime)[-1]
    log = pd.read_csv(csv)
    for ax, key in zip(row, keys, strict=True):
        if key in log:
            series = log[["step", key]].dropna()
            ax.plot(series["step"], series[key], lw=0.8)  # Lightning logs manual-optimisation runs by batch
        ax.set_title(f"{stage.removeprefix('pix2pix_')}: {key}", fontsize=9)
        ax.set_xlabel("batch", fontsize=8)
fig.suptitle("Two-stage generator: training curves (CPU, one core each)")
fig.savefig(OUT, dpi=80)
print(f"wrote {OUT}")
