"""Optimizers and learning-rate schedules (torch.optim). Concept: N3.2.3."""
from shendu.optim import lr_scheduler
from shendu.optim.adagrad import Adadelta, Adagrad
from shendu.optim.adam import Adam, AdamW
from shendu.optim.adam_variants import Adamax, NAdam, RAdam
from shendu.optim.lbfgs import LBFGS
from shendu.optim.newton import Newton, hessian
from shendu.optim.optimizer import Optimizer
from shendu.optim.rmsprop import RMSprop
from shendu.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Newton", "hessian", "LBFGS",
           "lr_scheduler", "Adadelta", "Adagrad", "Adamax", "NAdam", "RAdam"]
