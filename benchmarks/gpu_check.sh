#!/usr/bin/env bash
# GPU check (under 5 minutes on one GPU): bf16/fp16 steps for dcgan and wgan-gp with finite losses,
# images/s at fp32 vs bf16, and a 2-step progressive run. Prints a markdown table for RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pytest -q tests/test_precision.py -m "gpu" -p no:cacheprovider
"$PY" - <<'PYEOF'
import json, math, time, torch
from ganstab.config import load_config
from ganstab.train.loop import make_trainer
from ganstab.train import train

assert torch.cuda.is_available(), "no CUDA device"
print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
rows = []
for preset in ("dcgan", "wgan-gp"):
    for precision in ("fp32", "bf16", "fp16"):
        cfg = load_config(preset=preset, overrides=["data.name=fashion-mnist", "out=/tmp/gpu-check", "log.progress=false",
                                                    f"train.precision={precision}", "train.device=cuda",
                                                    "train.batch_size=256", "train.ema=0"])
        trainer = make_trainer(cfg)
        for _ in range(5):
            trainer.train_step()
        torch.cuda.synchronize()
        steps = 30
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        line = trainer.recorder.flush({"step": trainer.step}, write=False)
        finite = all(math.isfinite(line[k]) for k in ("loss_d", "loss_g"))
        images = steps * cfg.train.n_critic * cfg.train.batch_size
        rows.append((preset, precision, images / seconds, finite))
print("| preset | precision | real img/s | finite losses |")
print("|---|---|---|---|")
for preset, precision, ips, finite in rows:
    print(f"| {preset} | {precision} | {ips:.0f} | {finite} |")
cfg = load_config(overrides=["model.arch=progressive", "data.name=fashion-mnist", "model.d_norm=none",
                             "loss.kind=wasserstein", "penalty.gp=10", "penalty.drift=0.001", "train.steps=2",
                             "train.device=cuda", "train.precision=bf16", "out=/tmp/gpu-check-prog",
                             "log.progress=false", "log.every=1"])
result = train(cfg, overwrite=True, echo=lambda m: None)
print(f"progressive 2-step run: steps={result.steps}, last line={json.dumps(result.last_record)[:200]}")
assert all(ok for *_, ok in rows), "non-finite losses"
PYEOF
