-- SPDX-License-Identifier: MIT
--
-- 002_posting.sql - the posting path: new-topic moderation, and the outbox
-- that hands posts and notices to karl.
--
-- An outbox row is written in the same transaction as the archived message
-- (or the held message's notices), so a committed post is never lost on
-- the way to karl: messageserver's fan-out threads claim due rows (FOR
-- UPDATE SKIP LOCKED, so several instances share the work), send them to
-- karl batch by batch, and record progress after each batch karl has
-- acknowledged.  karl takes a repeated (job, batch) once, so resuming
-- after a crash sends nothing twice.

ALTER TABLE groups ADD COLUMN moderate_new_topics boolean NOT NULL
	DEFAULT false;

CREATE TABLE outbox (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind		text NOT NULL
	    CONSTRAINT outbox_kind_check CHECK (kind IN ('post', 'notice')),
	group_id	bigint REFERENCES groups (id) ON DELETE CASCADE,
	-- post: the archived message; its receivers are the group's members
	message_id	bigint REFERENCES messages (id) ON DELETE CASCADE,
	-- notice: the whole message and its receivers ([{"to": a}, ...])
	raw		bytea,
	receivers	jsonb,
	status		text NOT NULL DEFAULT 'pending'
	    CONSTRAINT outbox_status_check CHECK (
		status IN ('pending', 'done', 'failed')),
	-- progress: next batch to send, membership id the last one ended at
	batch		integer NOT NULL DEFAULT 0,
	after_member	bigint NOT NULL DEFAULT 0,
	receivers_sent	integer NOT NULL DEFAULT 0,
	attempts	integer NOT NULL DEFAULT 0,
	-- due time; a claimed row is pushed into the future (its lease)
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	last_error	text NOT NULL DEFAULT '',
	created_at	timestamptz NOT NULL DEFAULT now(),
	done_at		timestamptz,
	CONSTRAINT outbox_post_check CHECK (
		kind <> 'post' OR message_id IS NOT NULL),
	CONSTRAINT outbox_notice_check CHECK (
		kind <> 'notice' OR (raw IS NOT NULL AND receivers IS NOT NULL))
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at)
	WHERE status = 'pending';
CREATE INDEX outbox_message_idx ON outbox (message_id)
	WHERE message_id IS NOT NULL;
