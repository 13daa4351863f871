"""Fine-tuning a pre-trained language model on a labelled task with a new head (N5.3).

The pre-trained network becomes the *body*: its ``features(idx)`` (GPT: the final hidden
states; CharRNN: the top recurrent layer) feed a fresh Linear *head*. Transfer is controlled
by two knobs: ``freeze_body`` (``requires_grad_(False)`` on the body, so only the head learns:
a linear probe) and ``body_lr`` (a second param group, so the body moves more slowly than the
new head). Concept: N5.3 (pre-training, then fine-tuning on the task; transfer learning).
"""
from __future__ import annotations

from shendu.nn.dropout import Dropout
from shendu.nn.linear import Linear
from shendu.nn.module import Module
from shendu.tensor import Tensor


class SequenceClassifier(Module):
    """Class logits for a token sequence: a linear head on the body's mean-pooled features.

        f = mean_{t : idx_t != pad_id} body.features(idx)_t;  logits = head(dropout(f))

    Padding goes at the end, so a causal body (GPT, CharRNN) computes the real positions
    exactly as without padding, and the mask drops the padded ones from the mean.

    Args:
        body: a module with ``features(idx) -> (B, T, C)`` and ``feature_dim`` = C.
        num_classes: K.
        pad_id: the padding token id; None = every position counts. Default: None.
        dropout: on the pooled features. Default: 0.

    Shape:
        idx (B, T) int64 -> logits (B, K)

    Concept: N5.3.
    """

    def __init__(self, body, num_classes, pad_id=None, dropout=0.0):
        super().__init__()
        if not hasattr(body, "features") or not hasattr(body, "feature_dim"):
            raise TypeError(f"SequenceClassifier: the body must have features(idx) and "
                            f"feature_dim, got {type(body).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or num_classes < 2:
            raise ValueError(f"SequenceClassifier: num_classes must be an int >= 2, got "
                             f"{num_classes!r}")
        self.body = body
        self.drop = Dropout(dropout)
        self.head = Linear(body.feature_dim, num_classes)
        self.pad_id = pad_id

    def forward(self, idx):
        if not isinstance(idx, Tensor) or idx.ndim != 2:
            raise ValueError(f"SequenceClassifier: expected idx (B, T) of token ids, got "
                             f"{getattr(idx, 'shape', type(idx).__name__)}")
        h = self.body.features(idx)  # (B, T, C)
        if self.pad_id is None:
            pooled = h.mean(1)
        else:
            keep = (idx != self.pad_id).to(h.dtype).unsqueeze(-1)  # (B, T, 1)
            count = keep.sum(1).clamp(min=1.0)  # (B, 1): an all-padding row pools to zeros
            pooled = (h * keep).sum(1) / count  # (B, C)
        return self.head(self.drop(pooled))


def freeze_(module, frozen=True):
    """Stop (or restart) the gradients of every parameter of ``module``; returns it."""
    return module.requires_grad_(not frozen)


def body_parameters(model):
    """The body's trainable parameters (those not in ``model.head``)."""
    head = {id(p) for p in model.head.parameters()}
    return [p for p in model.parameters() if id(p) not in head and p.requires_grad]


def finetune_param_groups(model, lr, body_lr=None):
    """Param groups for fine-tuning: the head at ``lr``, the trainable body at ``body_lr``
    (default ``lr``); a frozen body (or ``body_lr=0``) gets no group.

    Returns:
        [{'params': head, 'lr': lr}] plus {'params': body, 'lr': body_lr} when it learns.
    """
    body_lr = lr if body_lr is None else body_lr
    if body_lr < 0 or lr <= 0:
        raise ValueError(f"finetune_param_groups: need lr > 0 and body_lr >= 0, got lr={lr}, "
                         f"body_lr={body_lr}")
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": lr}]
    body = body_parameters(model)
    if body and body_lr > 0:
        groups.append({"params": body, "lr": body_lr})
    return groups


def finetune(model, train, test=None, epochs=20, lr=1e-3, body_lr=None, freeze_body=False,
             batch_size=32, weight_decay=0.01, grad_clip=1.0, seed=0, log=None):
    """Train ``model`` (a SequenceClassifier) on labelled sequences for a fixed budget.

    Args:
        train, test: (idx (N, T) int64, labels (N,) int64) pairs; test is evaluated once,
            after the last epoch (it chooses nothing).
        epochs: passes over ``train``; every run gets the same fixed budget.
        lr, body_lr: learning rates of the head and of the body (default: lr).
        freeze_body: train the head only (the body's parameters stop requiring grad).
        weight_decay, grad_clip: AdamW's decoupled decay and the gradient-norm clip.

    Returns:
        {'history': shendu.train.History (loss, accuracy per epoch), 'test_loss',
        'test_accuracy'} (the test entries are None without ``test``).
    """
    from shendu import Generator
    from shendu.data import DataLoader, TensorDataset
    from shendu.nn import CrossEntropyLoss
    from shendu.optim import AdamW
    from shendu.train import Trainer
    from shendu.train.callbacks import Callback

    freeze_(model.body, freeze_body)
    optimizer = AdamW(finetune_param_groups(model, lr, 0.0 if freeze_body else body_lr),
                      lr=lr, weight_decay=weight_decay)
    callbacks = []
    if log is not None:
        class _Log(Callback):
            def on_epoch_end(self, epoch, logs=None):
                if (epoch + 1) % 5 == 0 or epoch + 1 == self.params.get("epochs"):
                    log(f"  epoch {epoch + 1:3d}: train loss {logs['loss']:.3f} "
                        f"accuracy {logs['accuracy']:.3f}")
        callbacks.append(_Log())
    trainer = Trainer(model, optimizer, CrossEntropyLoss(), callbacks=callbacks,
                      grad_clip_norm=grad_clip or None)
    loader = DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True,
                        generator=Generator(seed=seed))
    history = trainer.fit(loader, epochs=epochs)
    result = {"history": history, "test_loss": None, "test_accuracy": None}
    if test is not None:
        scores = trainer.evaluate(DataLoader(TensorDataset(*test), batch_size=256))
        result.update(test_loss=scores["loss"], test_accuracy=scores["accuracy"])
    return result
