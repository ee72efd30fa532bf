-- SPDX-License-Identifier: MIT
--
-- 003_karl_bounces.sql - permanent failures karl reports (POST /v1/bounces)
-- are bounce events with source 'karl'; karl_job makes a repeated report
-- of the same receiver of the same job a no-op.

ALTER TABLE bounce_events ADD COLUMN karl_job text
	CONSTRAINT bounce_events_karl_job_check CHECK (
		karl_job IS NULL OR length(karl_job) BETWEEN 1 AND 128);
CREATE UNIQUE INDEX bounce_events_karl_key ON bounce_events
	(karl_job, lower(email)) WHERE karl_job IS NOT NULL;
