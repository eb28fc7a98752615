"""The glue that wraps every HTTP request and cron job to fill the hook's
context. Its frames are on the stack of every call made meanwhile, so the
collector leaves frames of this directory out of attribution (they pass
calls through; docs/ATTRIBUTION.md §3). Keep code that could make a call out
of here."""

from . import ir_cron, ir_http, queue_job
