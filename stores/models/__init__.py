from stores.models.access import Access, ApiToken, Role
from stores.models.org import Franchisee, Region, Staff, Store

__all__ = ["Access", "ApiToken", "Franchisee", "Region", "Role", "Staff", "Store"]
