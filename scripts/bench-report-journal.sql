-- bench-report-journal.sql: journal-shaped rows for the report benchmark
-- (scripts/bench-report.sh), written straight into egress.journal.
--
-- psql variables: rows (how many), days (spread evenly over the `days` days
-- up to now). Deterministic: row g is always the same row.
--
-- The rows have the journal's shape and a realistic mix: 99.5 % calls over
-- 40 destinations (vendor, third-party, local and unknown ones, each with
-- its catalogue component and class) and 25 addons, with sizes, statuses
-- and errors; gap entries; settings changes. Their prev_hash and row_hash
-- are placeholders, not a chain: this journal does NOT verify, and is only
-- for timing reads. The rollups are then built from it by the collector's
-- own catch-up (bench-report.sh), not by this file.

INSERT INTO egress.journal (seq, prev_hash, row_hash, database, kind, recorded_at, collector,
    worker_id, worker_pid, worker_seq, started_at, duration_us, channel, protocol, direction,
    method, host, port, path, tls, status, error_class, bytes_out, bytes_in, addon, addon_path,
    component, class, self_egress, gap_count, gap_reason, detail)
SELECT g,
       '\x00'::bytea,
       '\x00'::bytea,
       current_database(),
       k.kind,
       k.at,
       'bench-host',
       1000 + g % 16,
       4000 + g % 16,
       g / 16,
       CASE WHEN k.kind = 'call' THEN k.at - interval '40 milliseconds' END,
       CASE WHEN k.kind = 'call' THEN 1000 + (g * 37) % 900000 END,
       CASE WHEN k.kind = 'call' THEN d.channel[k.h] END,
       CASE WHEN k.kind = 'call' THEN d.protocol[k.h] END,
       CASE WHEN k.kind = 'call' THEN 'outbound' END,
       CASE WHEN k.kind = 'call' THEN d.method[k.h] END,
       CASE WHEN k.kind = 'call' THEN d.host[k.h] END,
       CASE WHEN k.kind = 'call' THEN d.port[k.h] END,
       CASE WHEN k.kind = 'call' THEN '/v1/{id}/items' END,
       CASE WHEN k.kind = 'call' THEN d.port[k.h] IN (443, 465, 993, 995) END,
       CASE WHEN k.kind = 'call' THEN CASE WHEN g % 53 = 0 THEN 503 ELSE 200 END END,
       CASE WHEN k.kind = 'call' AND g % 97 = 0 THEN 'ConnectionError' END,
       CASE WHEN k.kind = 'call' THEN (g * 7919) % 40000 END,
       CASE WHEN k.kind = 'call' THEN (g * 104729) % 120000 END,
       CASE WHEN k.kind = 'call' THEN d.addon[k.a] END,
       CASE WHEN k.kind = 'call' THEN ARRAY[d.addon[k.a], 'base'] END,
       CASE WHEN k.kind = 'call' THEN d.component[k.h] END,
       CASE WHEN k.kind = 'call' THEN d.class[k.h] END,
       CASE WHEN k.kind = 'call' THEN false END,
       CASE WHEN k.kind = 'gap' THEN 1 + g % 7 END,
       CASE WHEN k.kind = 'gap' THEN (ARRAY['socket_missing', 'buffer_full', 'sequence_jump'])[1 + g % 3] END,
       CASE WHEN k.kind = 'config_change' THEN
           json_build_object('key', 'mit_network_audit.strict_redaction',
                             'old', CASE WHEN g % 4000 = 0 THEN 'True' ELSE 'False' END,
                             'new', CASE WHEN g % 4000 = 0 THEN 'False' ELSE 'True' END,
                             'user', 'admin', 'reported_by', 'odoo', 'changed_at_us', 0)::text
       END
FROM generate_series(1::bigint, :rows) AS g
CROSS JOIN (SELECT
    ARRAY['license.maildesk.mit-odoo.example', 'locker.mit-odoo.example',
          'smtp.gmail.com', 'imap.gmail.com', 'oauth2.googleapis.com', 'www.googleapis.com',
          'smtp.office365.com', 'outlook.office365.com', 'graph.microsoft.com', 'login.microsoftonline.com',
          'api.openai.com', 'api.anthropic.com', 'iap.odoo.com', 'services.odoo.com',
          'apps.odoo.com', 'partner-autocomplete.odoo.com', 'api.stripe.com', 'api.paypal.com',
          'hooks.slack.com', 'api.twilio.com', 'smtp.sendgrid.net', 'api.mailgun.net',
          'maps.googleapis.com', 'api.dhl.com', 'onlinetools.ups.com', 'wwwcie.ups.com',
          'api.fedex.com', 'ec.europa.eu', 'api.exchangerate.host', 'sentry.io',
          'localhost', '127.0.0.1', '10.0.0.5', '192.168.1.20',
          '203.0.113.9', '198.51.100.23', 'cdn.example.net', 'files.example.org',
          'unknown-api.example.com', 'telemetry.example.io'] AS host,
    ARRAY['MailDesk licence validation', 'MIT license locker',
          'Gmail SMTP/IMAP', 'Gmail SMTP/IMAP', 'Google OAuth and APIs', 'Google OAuth and APIs',
          'Microsoft 365 mail', 'Microsoft 365 mail', 'Microsoft login and Graph', 'Microsoft login and Graph',
          'OpenAI API', 'Anthropic API', 'Odoo IAP', 'Odoo publisher warranty',
          'Odoo Apps', 'Odoo IAP', 'Stripe', 'PayPal',
          'Slack', 'Twilio', 'SendGrid', 'Mailgun',
          'Google OAuth and APIs', 'DHL', 'UPS', 'UPS',
          'FedEx', 'EU VIES', 'Exchange rates', 'Sentry',
          'Loopback', 'Loopback', 'Private networks', 'Private networks',
          NULL, NULL, NULL, NULL, NULL, NULL] AS component,
    ARRAY['vendor', 'vendor',
          'third_party', 'third_party', 'third_party', 'third_party',
          'third_party', 'third_party', 'third_party', 'third_party',
          'third_party', 'third_party', 'third_party', 'third_party',
          'third_party', 'third_party', 'third_party', 'third_party',
          'third_party', 'third_party', 'third_party', 'third_party',
          'third_party', 'third_party', 'third_party', 'third_party',
          'third_party', 'third_party', 'third_party', 'third_party',
          'local', 'local', 'local', 'local',
          'unknown', 'unknown', 'unknown', 'unknown', 'unknown', 'unknown'] AS class,
    ARRAY['http', 'http', 'smtp', 'imap', 'http', 'http', 'smtp', 'imap', 'http', 'http',
          'http', 'http', 'http', 'http', 'http', 'http', 'http', 'http', 'http', 'http',
          'smtp', 'http', 'http', 'http', 'http', 'http', 'http', 'http', 'http', 'http',
          'socket', 'http', 'socket', 'http', 'socket', 'http', 'http', 'http', 'http', 'http'] AS channel,
    ARRAY['https', 'https', 'smtps', 'imaps', 'https', 'https', 'smtp', 'imaps', 'https', 'https',
          'https', 'https', 'https', 'https', 'https', 'https', 'https', 'https', 'https', 'https',
          'smtp', 'https', 'https', 'https', 'https', 'https', 'https', 'https', 'https', 'https',
          'tcp', 'http', 'tcp', 'http', 'tcp', 'https', 'https', 'https', 'https', 'https'] AS protocol,
    ARRAY['POST', 'POST', 'DATA', 'FETCH', 'POST', 'GET', 'DATA', 'FETCH', 'GET', 'POST',
          'POST', 'POST', 'POST', 'GET', 'GET', 'POST', 'POST', 'POST', 'POST', 'POST',
          'DATA', 'POST', 'GET', 'GET', 'POST', 'POST', 'POST', 'GET', 'GET', 'POST',
          NULL, 'GET', NULL, 'GET', NULL, 'POST', 'GET', 'GET', 'POST', 'POST'] AS method,
    ARRAY[443, 443, 465, 993, 443, 443, 587, 993, 443, 443,
          443, 443, 443, 443, 443, 443, 443, 443, 443, 443,
          587, 443, 443, 443, 443, 443, 443, 443, 443, 443,
          5432, 8069, 6379, 80, 9000, 443, 443, 443, 443, 443] AS port,
    ARRAY['mail', 'maildesk', 'ai_assistant', 'sale', 'purchase', 'account', 'stock',
          'website', 'crm', 'project', 'hr', 'helpdesk', 'payment_stripe', 'payment_paypal',
          'delivery_dhl', 'delivery_ups', 'delivery_fedex', 'base_vat', 'currency_rate_live',
          'google_calendar', 'microsoft_outlook', 'iap', 'partner_autocomplete', 'sms',
          'web_sentry'] AS addon
) AS d
CROSS JOIN LATERAL (SELECT
    CASE WHEN g % 2000 = 0 THEN 'config_change' WHEN g % 211 = 0 THEN 'gap' ELSE 'call' END AS kind,
    now() - (:days * interval '1 day') * (1 - g::float8 / :rows) AS at,
    1 + ((g * 7919) % 40)::int AS h,
    1 + ((g * 6151 + g / 100000) % 25)::int AS a
) AS k;
