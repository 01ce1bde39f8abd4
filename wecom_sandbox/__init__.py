"""A faithful local WeCom: WeCom's real paths, payloads, error codes and limits, with its own state.

It runs as its own process (``python -m wecom_sandbox serve``), never touches the portal's
database, keeps a clock that tests can advance, plays people through a control API under
``/sandbox/`` and fires real encrypted callbacks at the portal. It is a top-level package, not part of
``portal``, so that importing it loads neither Django nor any of our apps (``portal/__init__.py`` starts the
Celery app, which imports Django); tests/test_sandbox_isolation.py keeps it so. It needs only
the standard library, wechatpy (callback crypto) and qrcode (contact-way QR images).

Layout: ``state`` (tables, clock, persistence), ``server`` (HTTP, tokens, rate limits, faults,
routing), ``callbacks`` (encrypted delivery with retries, duplicates, reordering), and one module
per WeCom area registering its endpoints and people-actions: ``addressbook``, ``contacts``,
``messaging``, ``transfer``.
"""
