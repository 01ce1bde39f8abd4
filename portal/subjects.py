"""Each app is split into subject packages (DESIGN.md); its AppConfig.ready imports their parts here.

A subject's ``admin`` registers ModelAdmins, ``tasks`` Celery tasks, ``handlers`` WeCom event handlers and
``hooks`` beat schedules, 工作台 panels and role permissions. The app lists its subjects once, in order.
"""

from __future__ import annotations

import importlib
import importlib.util

PARTS = ("admin", "tasks", "handlers", "hooks")


def subject_modules(*, app: str, subjects: tuple[str, ...]) -> list[str]:
    return [f"{app}.{subject}.{part}" for subject in subjects for part in PARTS
            if importlib.util.find_spec(f"{app}.{subject}.{part}") is not None]


def subjects_import(*, app: str, subjects: tuple[str, ...]) -> None:
    for module in subject_modules(app=app, subjects=subjects):
        importlib.import_module(module)
