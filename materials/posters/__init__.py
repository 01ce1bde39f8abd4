"""Posters: a template (a background image and a JSON layout of placeholders) rendered per store or staff member.

``layout`` validates the JSON an HQ operator edits and fits Chinese text into its boxes; ``render`` draws the
posters (one renderer per template, a process pool for many). The models and the cache of rendered images are
the library's (``materials.library``); they call these functions.
"""
