"""The glue that wraps every HTTP request, cron job, server action, queue
job and ``odoo-bin shell`` console to fill the hook's context (its trigger
kinds are listed in docs/ATTRIBUTION.md §4). Its frames are on the stack of every call made meanwhile, so the
collector leaves frames of this directory out of attribution (they pass
calls through; docs/ATTRIBUTION.md §3). Keep code that could make a call out
of here."""

from . import ir_actions, ir_cron, ir_http, queue_job, shell
