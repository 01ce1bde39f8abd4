"""Staff posters for every staff member: posters_render_many on all cores vs one poster at a time.

python -m bench posters --scale 13000

Synthetic brand: 13,000 staff in 4,000 stores (names, addresses, hours), a generated 750×1334 background, a
layout with store name, address, hours, staff name, a fixed text and a QR code of a contact-way-like URL. The
posters are written to a temporary directory (deleted afterwards), as a cache writer would.

Measured: the pool (one renderer per worker process, built once) over all the staff, with peak memory: the
parent's own peak RSS (resource.getrusage) and the peak of the pool's processes summed (sampled from /proc every
0.1 s: the workers are children of the forkserver, not of this process, so RUSAGE_CHILDREN cannot see them).
Baseline: one poster at a time in this process, re-reading the template (background file and layout JSON,
validated, decoded) and loading the fonts for every poster, timed on a sample and extrapolated to all the staff.
Also reported: what qrcode's own choice of mask (instead of the fixed one) would add, timed on a sample.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import result_line, timed

WIDTH, HEIGHT = 750, 1334
LAYOUT = {"elements": [
    {"type": "text", "field": "store_name", "x": 60, "y": 90, "width": 630, "height": 130, "font_size": 52,
     "min_font_size": 30, "color": "#1a1a1a", "align": "center", "max_lines": 2},
    {"type": "text", "field": "store_address", "x": 60, "y": 240, "width": 630, "height": 80, "font_size": 28,
     "min_font_size": 20, "color": "#444444", "align": "center", "max_lines": 2},
    {"type": "text", "field": "store_hours", "x": 60, "y": 330, "width": 630, "height": 40, "font_size": 26,
     "min_font_size": 20, "color": "#444444", "align": "center"},
    {"type": "text", "field": "staff_name", "x": 60, "y": 1120, "width": 380, "height": 64, "font_size": 44,
     "min_font_size": 26, "color": "#c8102e"},
    {"type": "text", "field": "text", "text": "扫码添加您的专属店小二，新品福利抢先知", "x": 60, "y": 1200,
     "width": 380, "height": 80, "font_size": 26, "min_font_size": 22, "max_lines": 2},
    {"type": "qr", "x": 470, "y": 1060, "size": 230},
]}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志晓晨宇浩然子涵思雨欣怡梓轩"
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "苏州", "重庆", "长沙"]
PLACES = ["万达广场", "万象城", "大悦城", "龙湖天街", "印象城", "来福士", "太古里", "吾悦广场", "银泰城", "凯德广场"]
ROADS = ["人民路", "中山路", "解放路", "建设路", "和平路", "长江路", "延安路", "南京路", "淮海路", "滨江大道"]


def _background() -> bytes:
    from PIL import Image, ImageDraw

    down = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    across = Image.linear_gradient("L").rotate(90).resize((WIDTH, HEIGHT))
    image = Image.merge("RGB", (down.point(lambda v: 200 + v // 5), Image.new("L", (WIDTH, HEIGHT), 228),
                                across.point(lambda v: 170 + v // 4)))
    draw = ImageDraw.Draw(image)
    rng = random.Random(7)
    for _ in range(40):  # some shapes, so the JPEG is not a flat gradient
        x, y, r = rng.randrange(WIDTH), rng.randrange(400, 1000), rng.randrange(20, 120)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(rng.randrange(150, 255), rng.randrange(100, 200), 90))
    draw.rectangle((40, 1040, 710, 1300), fill=(255, 250, 240))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _staff(count: int) -> list[tuple[int, dict[str, str], str]]:
    """(staff id, values, contact-way URL) by store, about 3.25 staff a store as in the 13,000 / 4,000 brand."""
    rng = random.Random(12)
    stores = max(1, round(count / 3.25))
    items = []
    for key in range(count):
        store = key * stores // count
        city, place = CITIES[store % len(CITIES)], PLACES[store // len(CITIES) % len(PLACES)]
        values = {
            "store_name": f"{city}{place}{'旗舰' if store % 17 == 0 else ''}店（{store + 1}号）",
            "store_address": f"{city}市{ROADS[store % len(ROADS)]}{store % 900 + 1}号{place}{store % 5 + 1}层"
                             f" {store % 40 + 101}室",
            "store_hours": f"周一至周日 {9 + store % 2}:00-{21 + store % 2}:30",
            "staff_name": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 3)))),
        }
        items.append((key, values, f"https://work.weixin.qq.com/ca/cawcde{rng.getrandbits(64):016x}"))
    return items


class _PeakRss:
    """Peak of the summed RSS of this process's descendants that were not there before (the pool), from /proc."""

    def __init__(self) -> None:
        self.before = self._descendants()
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _descendants() -> set[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        found, frontier = set(), {os.getpid()}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found

    @staticmethod
    def _rss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            total = sum(self._rss_kb(pid) for pid in self._descendants() - self.before)
            self.peak_kb = max(self.peak_kb, total)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _baseline_one(template_dir: Path, values: dict, payload: str) -> bytes:
    """One poster the naive way: the template and the fonts read again for it."""
    from materials.posters.layout import layout_validate, poster_font_path
    from materials.posters.render import PosterRenderer, background_size

    background = (template_dir / "background.png").read_bytes()
    width, height = background_size(background)
    layout = layout_validate(layout=(template_dir / "layout.json").read_text(encoding="utf-8"), width=width,
                             height=height)
    renderer = PosterRenderer(background=background, layout=layout, font_path=poster_font_path())
    return renderer.render(values=values, qr_payload=payload)


def bench_posters(*, scale: int) -> str:
    from materials.posters.layout import layout_validate, poster_font_path
    from materials.posters.render import poster_qr, posters_render_many
    from portal.qr import qr_image

    processes = os.cpu_count() or 1
    background = _background()
    layout = layout_validate(layout=LAYOUT, width=WIDTH, height=HEIGHT)
    staff = _staff(scale)
    font = poster_font_path()
    with tempfile.TemporaryDirectory(prefix="xiaoer-posters-") as tmp:
        out = Path(tmp) / "posters"
        out.mkdir()
        template = Path(tmp) / "template"
        template.mkdir()
        (template / "background.png").write_bytes(background)
        (template / "layout.json").write_text(json.dumps(LAYOUT, ensure_ascii=False), encoding="utf-8")

        count = total_bytes = 0
        with _PeakRss() as rss, timed() as pool_time:
            for key, jpeg in posters_render_many(background=background, layout=layout, items=iter(staff),
                                                 processes=processes, font_path=font):
                (out / f"{key}.jpg").write_bytes(jpeg)
                count += 1
                total_bytes += len(jpeg)
        assert count == scale and len(os.listdir(out)) == scale, "every staff member gets exactly one poster"
        parent_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        sample = staff[:: max(1, scale // min(500, scale))][:500]
        with timed() as baseline_time:
            for _key, values, payload in sample:
                _baseline_one(template, values, payload)
        baseline_s = baseline_time.seconds * scale / len(sample)

    payloads = [payload for _key, _values, payload in sample]
    start = time.perf_counter()
    for payload in payloads:
        poster_qr(payload, size=230)
    fixed_ms = (time.perf_counter() - start) * 1000 / len(payloads)
    start = time.perf_counter()
    for payload in payloads:
        qr_image(payload, size=230, min_scale=2)
    auto_ms = (time.perf_counter() - start) * 1000 / len(payloads)
    auto_extra_s = (auto_ms - fixed_ms) / 1000 * scale / processes

    return "\n".join([
        f"staff={scale} stores={max(1, round(scale / 3.25))} processes={processes} pool={pool_time.seconds:.1f}s "
        f"({scale / pool_time.seconds:.0f} posters/s, {pool_time.seconds * processes * 1000 / scale:.1f} ms CPU-slot "
        f"each) jpeg_avg={total_bytes / count / 1024:.0f}KiB written={total_bytes / 2**20:.0f}MiB",
        f"peak_rss parent={parent_peak_mb:.0f}MB pool_processes_sum={rss.peak_kb / 1024:.0f}MB "
        f"(forkserver + {processes} workers, sampled every 0.1 s)",
        f"baseline one at a time, template and fonts re-read per poster: {baseline_time.seconds:.1f}s for a sample of "
        f"{len(sample)}, extrapolated to {scale}: {baseline_s:.1f}s",
        f"qr: fixed mask {fixed_ms:.2f} ms, qrcode's own mask choice {auto_ms:.2f} ms "
        f"(would add about {auto_extra_s:.0f}s to the pool run)",
        result_line(bench="posters", value=pool_time.seconds, unit="s", baseline=baseline_s),
    ])
