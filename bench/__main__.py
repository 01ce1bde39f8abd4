"""python -m bench NAME --scale N   |   python -m bench all --small"""

from __future__ import annotations

import argparse
import sys

from bench.harness import django_setup

SMALL = {"org": 200, "scoped_lists": 200, "callbacks": 1000, "dashboard": 100_000, "welcome": 500,
         "members": 100_000, "segments": 200_000, "scale": 200_000, "changelist": 200_000,
         "members_excel": 2_000, "posters": 1000, "material_usage": 20_000,
         "material_search": 20_000, "task_dispatch": 200, "task_notify": 200, "task_rollups": 200,
         "mobile_tasks": 200}
FULL = {"org": 4000, "scoped_lists": 4000, "callbacks": 10000, "dashboard": 1_000_000, "welcome": 1500,
        "members": 1_000_000, "segments": 10_000_000, "scale": 10_000_000, "changelist": 10_000_000,
        "members_excel": 10_000, "posters": 13_000, "material_usage": 100_000,
        "material_search": 200_000, "task_dispatch": 4000, "task_notify": 4000, "task_rollups": 4000,
        "mobile_tasks": 4000}


def _benches():
    from bench import (
        callbacks,
        changelist,
        dashboard,
        material_search,
        material_usage,
        members,
        members_excel,
        mobile_tasks,
        org,
        posters,
        scale,
        segments,
        task_dispatch,
        task_notify,
        task_rollups,
        welcome,
    )

    return {"org": org.bench_org, "scoped_lists": org.bench_scoped_lists, "callbacks": callbacks.bench_callbacks,
            "dashboard": dashboard.bench_dashboard, "welcome": welcome.bench_welcome, "members": members.bench_members,
            "segments": segments.bench_segments, "scale": scale.bench_scale, "changelist": changelist.bench_changelist,
            "members_excel": members_excel.bench_members_excel,
            "posters": posters.bench_posters, "material_usage": material_usage.bench_material_usage,
            "material_search": material_search.bench_material_search,
            "task_dispatch": task_dispatch.bench_task_dispatch, "task_notify": task_notify.bench_task_notify,
            "task_rollups": task_rollups.bench_task_rollups,
            "mobile_tasks": mobile_tasks.bench_mobile_tasks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", help="a benchmark name, or 'all'")
    parser.add_argument("--scale", type=int, help="size (stores for org benchmarks)")
    parser.add_argument("--small", action="store_true", help="the small scale used by `make bench`")
    args = parser.parse_args(argv)
    django_setup()
    benches = _benches()
    names = list(benches) if args.name == "all" else [args.name]
    for name in names:
        if name not in benches:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(benches)}")
        scale = args.scale or (SMALL if args.small else FULL)[name]
        print(f"== {name} scale={scale}", flush=True)
        print(benches[name](scale=scale), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
