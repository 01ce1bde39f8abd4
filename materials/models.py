"""Every model of the materials app, imported from its subject package (Django loads an app's models from here)."""

from materials.library.models import Folder, Material, MaterialKind, MaterialStatus, MaterialTag, MaterialVersion
from materials.media.models import WeComMedia
from materials.posters.models import RenderedPoster
from materials.usage.models import MaterialUse, MaterialUseDaily, UseAction

__all__ = ["Folder", "Material", "MaterialKind", "MaterialStatus", "MaterialTag", "MaterialVersion",
           "MaterialUse", "MaterialUseDaily", "RenderedPoster", "UseAction", "WeComMedia"]
