"""OCA's queue_job, when installed: a job's calls are the job's. Its Job
class is plain Python (no model method to inherit), so it is wrapped once."""

from .. import glue

_WRAPPED = "_mit_network_audit_wrapped"


def wrap_queue_job():
    """Wraps ``odoo.addons.queue_job.job.Job.perform``; idempotent. Returns
    whether queue_job is there."""
    try:
        from odoo.addons.queue_job.job import Job
    except ImportError:
        return False
    original = Job.perform
    if getattr(original, _WRAPPED, False):
        return True

    def perform(self):
        name = getattr(self, "func_string", None) or getattr(self, "method_name", "") or ""
        token = glue.enter(self.env, "queue_job", str(name))
        try:
            return original(self)
        finally:
            glue.leave(token)

    setattr(perform, _WRAPPED, True)
    Job.perform = perform
    return True
