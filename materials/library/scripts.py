"""Scripts (话术) with their variables filled for the staff member, the store and the customer.

A script names its variables as ``{客户称呼}`` (materials.library.services.SCRIPT_VARIABLES). Filling replaces
each variable whose value is known; a variable that is not one of ours, or whose value is not known (an HQ
login has no store), stays exactly as written, so nothing is silently dropped from the text. A customer who is
not named is addressed politely as "您", so a copied script can be sent as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stores.org.models import Staff, Store

VARIABLE = re.compile(r"\{([^{}]{1,20})\}")
DEFAULT_CUSTOMER_ADDRESS = "您"


@dataclass(frozen=True)
class ScriptContext:
    """Whom a script is filled for: the viewer's staff member and store (either may be unknown), the customer."""

    staff: Staff | None = None
    store: Store | None = None
    customer_name: str = ""


def script_values(*, context: ScriptContext) -> dict[str, str]:
    """The known values of the script variables for ``context``; an unknown value is left out."""
    store = context.store
    values = {
        # Part of the script's own (Chinese) text, whatever the page's language: not a UI string.
        "客户称呼": context.customer_name.strip() or DEFAULT_CUSTOMER_ADDRESS,
        "导购姓名": context.staff.name if context.staff else "",
        "门店名称": store.name if store else "",
        "门店地址": store.address if store else "",
        "营业时间": store.opening_hours if store else "",
    }
    return {name: value for name, value in values.items() if value}


def script_render(*, text: str, values: dict[str, str]) -> str:
    """Each ``{变量}`` with a value replaced by it; anything else left exactly as written."""
    return VARIABLE.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def script_fill(*, text: str, context: ScriptContext) -> str:
    """``text`` with its variables filled for ``context``."""
    return script_render(text=text, values=script_values(context=context))
