"""The learning curve, shared by the train stage (DIR/train/history.png) and the report."""

from __future__ import annotations

import numpy as np


def history_figure(history: dict):
    """Loss and accuracy per epoch, train and validation (history: {train,val}_{loss,accuracy}
    arrays (epochs,), or (K, epochs) for K members: one line each); a matplotlib Figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, np.shape(history["train_loss"])[-1] + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, what in zip(axes, ("loss", "accuracy")):
        for i, split in enumerate(("train", "val")):
            for k, curve in enumerate(np.atleast_2d(history[f"{split}_{what}"])):
                ax.plot(epochs, curve, color=f"C{i}", label=None if k else split)
        ax.set(xlabel="epoch", ylabel=what)
        ax.legend()
    return fig
