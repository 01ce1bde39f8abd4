"""The demo's posters: every staff member the demo poster template reaches gets their own, with their own code.

Run after the customers part of the demo has made the staff codes in WeCom (customers registers this seeder
after its own), through the same job HQ starts from the admin. Idempotent: a poster whose inputs are unchanged
is not drawn again.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from materials.library.demo import POSTER_TITLE
from materials.library.models import Material
from materials.posters.services import posters_job_run, posters_job_start


def posters_demo_run() -> str:
    template = Material.objects.filter(title=POSTER_TITLE).first()
    hq = get_user_model().objects.filter(username="hq_operator").first()
    if template is None or hq is None:
        return "海报：跳过（没有演示海报模板）"
    run = posters_job_run(run_id=posters_job_start(material=template, by=hq).pk)
    progress = run.progress
    return (f"海报：{POSTER_TITLE} 共 {progress.get('total')} 位员工，新绘制 {progress.get('rendered')}，"
            f"未变 {progress.get('unchanged')}，暂无二维码 {progress.get('without_qr')}")
