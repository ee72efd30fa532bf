-- SPDX-License-Identifier: MIT
--
-- 006_bouncer.sql - when an account was last put back to 'ok' (the bounce
-- probe's restore link).  The bouncer cron job judges soft bounces only
-- from events received after it, so bounces from before a restore do not
-- make the address bouncing again the next night.  NULL: never restored.

ALTER TABLE bounce_state ADD COLUMN ok_since timestamptz;
