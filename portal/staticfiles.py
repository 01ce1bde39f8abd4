"""Front-end packages from the npm registry, served as static files: exactly the files listed here.

``package.json`` and ``package-lock.json`` pin the packages; ``make install`` runs ``npm ci`` into
``node_modules/`` (never committed). ``NodeModulesFinder`` (in ``STATICFILES_FINDERS``) hands Django
only the files of ``VENDOR_FILES``, each under the ``vendor/`` static prefix, so ``runserver``,
the test live server and ``collectstatic`` (production, ``make serve``) see the same three files and
nothing else of node_modules::

    {% load static %}<script src="{% static 'vendor/echarts.min.js' %}" defer></script>

Its ``check()`` is a Django system check (run by ``runserver``, ``migrate``, ``check --deploy`` …):
a missing node_modules or a missing file is an error that says to run ``make install``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage
from django.utils.translation import gettext as _

VENDOR_PREFIX = "vendor"
# name under vendor/ -> the file inside node_modules (the package's own minified build), of the same name
VENDOR_FILES = {
    "echarts.min.js": "echarts/dist/echarts.min.js",
    "weui.min.css": "weui/dist/style/weui.min.css",
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
}
assert all(Path(source).name == name for name, source in VENDOR_FILES.items())


def node_modules_dir() -> Path:
    return Path(settings.XIAOER_NODE_MODULES)


def _storage(source: Path) -> FileSystemStorage:
    storage = FileSystemStorage(location=source.parent)
    storage.prefix = VENDOR_PREFIX  # type: ignore[attr-defined]  # collectstatic reads it, as for STATICFILES_DIRS
    return storage


class NodeModulesFinder(BaseFinder):
    """Finds ``vendor/<name>`` for each name of ``VENDOR_FILES``, in ``settings.XIAOER_NODE_MODULES``."""

    def check(self, **kwargs) -> list[CheckMessage]:
        root = node_modules_dir()
        hint = _("在项目目录运行 make install（按 package-lock.json 执行 npm ci）。")
        if not root.is_dir():
            return [Error(_("前端依赖未安装：找不到 %(path)s（ECharts、WeUI、htmx）。") % {"path": root},
                          hint=hint, id="xiaoer.E020")]
        missing = [source for source in VENDOR_FILES.values() if not (root / source).is_file()]
        if missing:
            message = _("前端依赖不完整：%(path)s 中缺少 %(files)s。") % {"path": root, "files": "、".join(missing)}
            return [Error(message, hint=hint, id="xiaoer.E021")]
        return []

    def _source(self, path: str) -> Path | None:
        prefix, _slash, name = path.replace("\\", "/").partition("/")
        if prefix != VENDOR_PREFIX or name not in VENDOR_FILES:
            return None
        source = node_modules_dir() / VENDOR_FILES[name]
        return source if source.is_file() else None

    def find(self, path, find_all=False, **kwargs):
        find_all = bool(kwargs.get("all", find_all))  # ``all`` is the name before Django 5.2 (removed in 6.1)
        if str(node_modules_dir()) not in finders.searched_locations:
            finders.searched_locations.append(str(node_modules_dir()))
        source = self._source(path)
        if source is None:
            return []  # as Django's own finders: finders.find() adds up what each returns
        return [str(source)] if find_all else str(source)

    def list(self, ignore_patterns) -> Iterator[tuple[str, FileSystemStorage]]:
        for name, source in VENDOR_FILES.items():
            path = node_modules_dir() / source
            if path.is_file():
                yield name, _storage(path)
