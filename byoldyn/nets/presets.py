"""Named presets of `byoldyn train` (plain data: importable without the `nets` extra, so the CLI's parser
builds on a plain install). `official` is the official code's CIFAR-10 recipe (the defaults); `paper-cifar10` the
paper's App. C full-scale run; `cpu-hour` the CPU recipe search's best run (figures/nets/SEARCH.md).
"""

from __future__ import annotations

__all__ = ["PRESETS"]

#: Flag values (argparse dest -> value) of each named preset; flags given explicitly override them.
PRESETS: dict[str, dict] = {
    "official": {},
    "paper-cifar10": dict(width=1.0, depth="18", epochs=100, batch_size=128, lr=0.03, momentum=0.9, wd=4e-4,
                          ema=0.996, predictor="linear"),
    # the CPU recipe search's best run (figures/nets/SEARCH.md, p3): one hour of one core, full CIFAR-10
    "cpu-hour": dict(width=0.25, depth="10", target_init="copy", lr=0.2, lr_schedule="cosine", warmup_steps=200,
                     ema=0.99, ema_schedule="byol", alpha_p=10.0, epochs=11, total_steps=4000, stop_at=4000,
                     eval_every=250),
}
