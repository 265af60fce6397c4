"""Prediction writers: autoencoder embeddings to Parquet (one row per crop, keyed by city and tile)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import BasePredictionWriter


def predictions_to_frame(predictions: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Flatten ``AutoencoderTask.predict_step`` outputs into a DataFrame with an ``embedding`` column."""
    rows = []
    for p in predictions:
        emb = p["embedding"].float().cpu().numpy()
        bounds = p["bounds"].cpu().numpy()
        for i in range(emb.shape[0]):
            rows.append(
                {
                    "tile_id": p["tile_id"][i],
                    "city": p["city"][i],
                    "split": p["split"][i],
                    "crs": p["crs"][i],
                    "minx": bounds[i, 0],
                    "miny": bounds[i, 1],
                    "maxx": bounds[i, 2],
                    "maxy": bounds[i, 3],
                    "embedding": emb[i].astype(np.float32),
                }
            )
    return pd.DataFrame(rows)


class EmbeddingWriter(BasePredictionWriter):
    """Writes every rank's predictions to ``output`` (Parquet; per-rank files under DDP)."""

    def __init__(self, output: str = "embeddings.parquet") -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        preds = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        df = predictions_to_frame(preds)
        path = Path(self.output)
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
