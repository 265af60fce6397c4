"""The shipped weights of the two-stage generator (``citygen generate --ckpt pretrained``); see MODEL_CARD.md.

Data only: ``stage1.pt`` (targets -> streets and paths) and ``stage2.pt`` (streets and targets -> buildings
and green), generator-only exports written by ``citygen export-weights``. Trained on OpenStreetMap data,
(c) OpenStreetMap contributors, ODbL 1.0.
"""
