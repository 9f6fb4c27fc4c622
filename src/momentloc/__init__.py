"""momentloc: find the moment in an untrimmed video that a sentence describes."""

from momentloc.types import Batch, Moment, Pair

__version__ = "0.1.0"

__all__ = ["Batch", "Moment", "Pair", "Predictor", "__version__"]


def __getattr__(name: str):
    # Predictor pulls in torch models; import it only when asked for.
    if name == "Predictor":
        from momentloc.predict import Predictor

        return Predictor
    raise AttributeError(name)
