"""train.png: the training loss and the held-out metrics per epoch (epoch 0 = the untrained network)."""

from __future__ import annotations

from pathlib import Path


def plot_training(metrics: dict, path: str | Path) -> None:
    # Imported on use (matplotlib is slow to load and --help does not need it). An explicit Agg figure: no
    # pyplot state, and the process's matplotlib backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = metrics["history"]
    epochs = range(1, len(history["epoch_loss"]) + 1)
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_eval = fig.subplots(1, 2)
    loss_name = metrics["config"]["loss"]
    ax_loss.plot(epochs, history["epoch_loss"], marker="o", label=f"{loss_name} loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_frac = ax_loss.twinx()
    aux = history["aux_name"].replace("_", " ")
    ax_frac.plot(epochs, history["epoch_aux"], color="tab:orange", linestyle="--", label=aux)
    ax_frac.set_ylabel(aux)
    if history["aux_name"] == "active_fraction":
        ax_frac.set_ylim(0, 1)
    lines = ax_loss.get_legend_handles_labels()[0] + ax_frac.get_legend_handles_labels()[0]
    ax_loss.legend(lines, [line.get_label() for line in lines], loc="upper right")
    ax_loss.set_title("training")

    heldout = history["heldout"]
    for key, label in (
        ("val_at_far_1e-3", "VAL @ FAR=1e-3"),
        ("accuracy_10fold", "10-fold accuracy"),
        ("auc", "ROC AUC"),
    ):
        ax_eval.plot(range(len(heldout)), [h[key] for h in heldout], marker="o", label=label)
        raw = metrics["raw_pixels"][key]
        ax_eval.axhline(raw, linestyle=":", color=ax_eval.lines[-1].get_color(), linewidth=1)
    ax_eval.set_xlabel("epoch (0 = untrained)")
    ax_eval.set_ylim(0, 1.02)
    ax_eval.set_title("held-out identities (dotted: raw pixels)")
    ax_eval.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
