"""Training loop (Keras's loop order, torch's step order), callbacks and metrics."""
from shendu.train.callbacks import (Callback, CallbackList, EarlyStopping, GradientClipping,
                                    LRScheduler, ModelCheckpoint, MonitorCallback,
                                    TerminateOnNaN)
from shendu.train.diagnosis import Diagnosis, Finding, Remedy, diagnose
from shendu.train.doctor import Doctor
from shendu.train.loggers import CSVLogger, ProgressBar, TensorBoard
from shendu.train.metrics import RunningMean, accuracy, confusion_matrix, top_k_accuracy
from shendu.train.trainer import History, Trainer

__all__ = ["Callback", "CallbackList", "CSVLogger", "Diagnosis", "Doctor", "EarlyStopping", "Finding", "GradientClipping",
           "History", "LRScheduler", "ModelCheckpoint", "MonitorCallback", "ProgressBar",
           "Remedy", "RunningMean", "TensorBoard", "TerminateOnNaN", "Trainer", "accuracy",
           "confusion_matrix", "diagnose", "top_k_accuracy"]
