"""Training wake words offline on the CPU from synthetic speech (extra ``train``).

``train(phrase, out_dir)`` writes a model folder that
:class:`glasses_sdk.inference.wakeword.WakeWordDetector` loads. Importing this package
does not need torch; :func:`train` raises
:class:`~glasses_sdk._exceptions.MissingDependencyError` naming the extra when it is
missing.
"""

from glasses_sdk.wakeword_train._synth import Voice, synthesize
from glasses_sdk.wakeword_train._trainer import TrainConfig, TrainReport, train

__all__ = ["TrainConfig", "TrainReport", "Voice", "synthesize", "train"]
