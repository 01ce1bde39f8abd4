"""Every model of the stores app, imported from its subject package (Django loads an app's models from here)."""

from stores.access.models import Access, ApiToken, Role
from stores.notices.models import Notice
from stores.org.models import Franchisee, Region, Staff, Store

__all__ = ["Access", "ApiToken", "Franchisee", "Region", "Notice", "Role", "Staff", "Store"]
