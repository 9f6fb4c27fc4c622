"""momentloc: find the moment in an untrimmed video that a sentence describes."""

__version__ = "0.1.0"

__all__ = ["Batch", "Moment", "Pair", "Predictor", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `momentloc --help` does not pay for importing torch.
    if name == "Predictor":
        from momentloc.predict import Predictor

        return Predictor
    if name in ("Batch", "Moment", "Pair"):
        from momentloc import types

        return getattr(types, name)
    raise AttributeError(name)
