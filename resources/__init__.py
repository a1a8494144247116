"""What the assets share: the data root and the loaded models."""

from resources.home import NagHomeResource
from resources.models import ModelResource

__all__ = ["ModelResource", "NagHomeResource"]
