-- SPDX-License-Identifier: MIT
--
-- 005_commands.sql - the email commands (docs/commands.md).
--
-- memberships.nomail_until: a vacation set by group+nomail-until-DATE; the
-- fan-out skips the member through that date and mail resumes by itself
-- the day after, the delivery setting untouched.
--
-- command_replies: one row per reply a command got, so that replies to
-- one address are limited per hour (a forged sender cannot turn the
-- command addresses into a mail cannon).  Rows older than a day are
-- pruned by the command path itself.

ALTER TABLE memberships ADD COLUMN nomail_until date;

CREATE TABLE command_replies (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	email		text NOT NULL		-- lower case
	    CONSTRAINT command_replies_email_check CHECK (
		email = lower(email) AND length(email) <= 320),
	group_id	bigint REFERENCES groups (id) ON DELETE CASCADE,
	command		text NOT NULL DEFAULT '',
	sent_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX command_replies_email_idx ON command_replies (email, sent_at);
CREATE INDEX command_replies_sent_idx ON command_replies (sent_at);
