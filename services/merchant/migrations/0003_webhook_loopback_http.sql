-- Webhook endpoints may be http://127.0.0.1:<port> where the service allows it
-- (setting webhook_loopback_http, tests and development); https otherwise.
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_url_check;
ALTER TABLE webhook_endpoints
    ADD CONSTRAINT webhook_endpoints_url_check
    CHECK (url LIKE 'https://%' OR url LIKE 'http://127.0.0.1:%');
