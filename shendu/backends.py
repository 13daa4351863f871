"""``shendu.backends``: the flags torch scripts set or query (``backends.cudnn``, ``backends.mps``).

shendu calls neither cuDNN nor Metal, so both report unavailable; the cuDNN flags are kept as
plain attributes so ``torch.backends.cudnn.benchmark = True`` runs and reads back.
"""
from __future__ import annotations

import types

cudnn = types.SimpleNamespace(enabled=True, benchmark=False, deterministic=False,
                              is_available=lambda: False)
mps = types.SimpleNamespace(is_available=lambda: False, is_built=lambda: False)
