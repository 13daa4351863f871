"""Training loop (Keras's loop order, torch's step order), callbacks and metrics."""
from shendu.train.callbacks import (Callback, CallbackList, CSVLogger, EarlyStopping,
                                    GradientClipping, LRScheduler, ModelCheckpoint,
                                    MonitorCallback, ProgressBar, TerminateOnNaN)
from shendu.train.metrics import RunningMean, accuracy, confusion_matrix, top_k_accuracy
from shendu.train.trainer import History, Trainer

__all__ = ["Callback", "CallbackList", "CSVLogger", "EarlyStopping", "GradientClipping",
           "History", "LRScheduler", "ModelCheckpoint", "MonitorCallback", "ProgressBar",
           "RunningMean", "TerminateOnNaN", "Trainer", "accuracy", "confusion_matrix",
           "top_k_accuracy"]
