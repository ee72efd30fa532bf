-- SPDX-License-Identifier: MIT
--
-- 004_bounce_counts.sql - a bounce caused by the message or the list (an
-- enhanced status 5.7.x policy or spam rejection, a message too big) is
-- recorded but does not count against the address: counts is false.

ALTER TABLE bounce_events ADD COLUMN counts boolean NOT NULL DEFAULT true;
CREATE INDEX bounce_events_counting_idx ON bounce_events
	(account_id, received_at) WHERE counts;
