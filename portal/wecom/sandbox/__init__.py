"""A faithful local WeCom: WeCom's real paths, payloads, error codes and limits, with its own state.

It runs as its own process (``python -m portal.wecom.sandbox serve``), never touches the portal's
database, keeps a clock that tests can advance, plays people through a control API under
``/sandbox/`` and fires real encrypted callbacks at the portal. Nothing here imports Django.

Layout: ``state`` (tables, clock, persistence), ``server`` (HTTP, tokens, rate limits, faults,
routing), ``callbacks`` (encrypted delivery with retries, duplicates, reordering), and one module
per WeCom area registering its endpoints and people-actions: ``addressbook``, ``contacts``,
``messaging``, ``transfer``.
"""
