"""What every trainer returns and prints, whatever the framework: one history row and one line per epoch,
and a FitResult that says how the run ended, in the same words in each."""
from __future__ import annotations

from dataclasses import dataclass, field


def epoch_row(epoch: int, lr: float, train: dict, test: dict, val: dict | None, seconds: float) -> dict:
    """The history row of one epoch (a result file's "history" keeps these keys in this order).
    `train`, `val`: {"loss", "acc"}; `test`: {"loss", "acc", "correct", "total"}."""
    row = {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_acc": train["acc"],
           "test_loss": test["loss"], "test_acc": test["acc"], "test_correct": test["correct"]}
    if val:
        row.update(val_loss=val["loss"], val_acc=val["acc"])
    row["seconds"] = seconds
    return row


def epoch_line(row: dict, test: dict, val: dict | None) -> str:
    """The line every trainer prints after an epoch."""
    line = (f"epoch {row['epoch']:2d}  lr {row['lr']:.6f}  train loss {row['train_loss']:.4f} acc "
            f"{row['train_acc']:.2f}%  | test loss {test['loss']:.4f}, {test['correct']}/{test['total']} "
            f"({test['acc']:.2f}%)")
    if val:
        line += f"  | val loss {val['loss']:.4f} ({val['acc']:.2f}%)"
    return line


@dataclass
class FitResult:
    history: list = field(default_factory=list)  # one dict per epoch
    wall_seconds: float = 0.0
    stopped_early: bool = False
    best_epoch: int | None = None  # by validation loss, when there is a validation split
    best_state: dict | None = None
    restored: bool = False  # the model ends with the weights of best_epoch (cfg.restore_best)

    @property
    def final(self) -> dict:
        """The history row of the weights the model ends with: the last epoch, or the restored best."""
        return self.history[self.best_epoch - 1] if self.restored else self.history[-1]

    def epoch(self, epoch: int, lr: float, train: dict, test: dict, val: dict | None, seconds: float) -> dict:
        """Record and print one epoch."""
        row = epoch_row(epoch, lr, train, test, val, seconds)
        self.history.append(row)
        print(epoch_line(row, test, val), flush=True)
        return row

    def best_by_val(self):
        """best_epoch: the first epoch with the lowest validation loss (when there was a validation split)."""
        losses = [r["val_loss"] for r in self.history if "val_loss" in r]
        if losses:
            self.best_epoch = losses.index(min(losses)) + 1

    def stop(self, waited: int):
        self.stopped_early = True
        print(f"early stop: val loss has not improved for {waited} epochs (best at epoch {self.best_epoch})",
              flush=True)

    def restore(self, epoch: int):
        """The model now holds the weights of `epoch`."""
        self.best_epoch, self.restored = epoch, True
        print(f"restored the weights of epoch {epoch} (lowest val loss): held-out test accuracy "
              f"{self.final['test_acc']:.2f}%", flush=True)
