"""One module per area (sync, acquisition, members, segments, dashboard): registrations made at startup.

    event_handler(...)     WeCom callbacks the area handles (portal.wecom.events)
    schedule_register(...) beat jobs (portal.schedules)
    panel_register(...)    工作台 panels (portal.dashboard)
    role_permissions_extend(...) what each role may do with the area's models (stores.roles)
"""
