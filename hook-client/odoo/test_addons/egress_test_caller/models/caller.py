from email.message import EmailMessage

import requests

from odoo import api, models


class Caller(models.AbstractModel):
    """Outbound calls made the way addons make them."""

    _name = "egress.test.caller"
    _description = "egress-audit test caller"

    @api.model
    def fetch(self, url):
        """An HTTP GET with requests, as connectors do."""
        response = requests.get(url, params={"api_key": "not-journaled"}, timeout=10)
        return f"{response.status_code}"

    @api.model
    def send_mail(self, host, port):
        """A mail through Odoo's own mail server model (base), as the mail
        queue does."""
        message = EmailMessage()
        message["From"] = "odoo@example.com"
        message["To"] = "someone@example.com"
        message["Subject"] = "egress-audit test"
        message.set_content("A body the audit never stores.")
        self.env["ir.mail_server"].send_email(message, smtp_server=host, smtp_port=port,
                                              smtp_encryption="none")
        return True
