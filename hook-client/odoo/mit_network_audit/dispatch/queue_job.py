"""OCA's queue_job, when installed: a job's calls are the job's. Its Job
class is plain Python (no model method to inherit), so it is wrapped once."""

from .. import glue

_WRAPPED = "_mit_network_audit_wrapped"


def _job_name(job):
    return getattr(job, "func_string", None) or getattr(job, "method_name", "") or ""


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
        # The job's name (its arguments' repr) is formatted only if the job
        # makes a call.
        token = glue.enter(self.env, "queue_job", self, _job_name)
        try:
            return original(self)
        finally:
            glue.leave(token)

    setattr(perform, _WRAPPED, True)
    Job.perform = perform
    return True
