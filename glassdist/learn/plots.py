"""The learning curve, shared by the train stage (DIR/train/history.png) and the report."""

from __future__ import annotations

import numpy as np


def history_figure(history: dict):
    """Loss and accuracy per epoch, train and validation (history: {train,val}_{loss,accuracy}
    arrays (epochs,)); a matplotlib Figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, what in zip(axes, ("loss", "accuracy")):
        for split in ("train", "val"):
            ax.plot(epochs, history[f"{split}_{what}"], label=split)
        ax.set(xlabel="epoch", ylabel=what)
        ax.legend()
    return fig
