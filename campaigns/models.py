"""Every model of the campaigns app, imported from its subject package (Django loads an app's models from here)."""

from campaigns.tasks.models import (
    Assignment,
    AssignmentEvent,
    Campaign,
    ChecklistItem,
    ChecklistTick,
    Evidence,
    FollowUp,
    ReminderLog,
    StoreTask,
    Task,
    TaskMaterial,
    TaskStoreCount,
    TaskVariant,
)

__all__ = ["Assignment", "AssignmentEvent", "Campaign", "ChecklistItem", "ChecklistTick", "Evidence", "FollowUp",
           "ReminderLog", "StoreTask", "Task", "TaskMaterial", "TaskStoreCount", "TaskVariant"]
