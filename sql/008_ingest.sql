-- SPDX-License-Identifier: MIT
--
-- 008_ingest.sql - the archive step of the posting pipeline in one call.
--
-- ms_archive_post stores an accepted post as messageserver_archive.c did
-- in three statements: a new topic when p_topic is NULL (its subject the
-- subject key, started by the poster's account), the messages row (the
-- number from the messages_number trigger, the search vector generated),
-- and, unless p_no_email, the outbox row that hands the post to the
-- fan-out when some active member takes the group's mail by email
-- (individual, or special_only for a special post).  One round trip
-- instead of three: under ingest each statement cost more in wake-ups
-- between messageserver and its backend than in execution.
--
-- Returns the message's id, number and topic and whether an outbox row
-- was written, or no row when the group has this Message-ID already (a
-- concurrent delivery won; the caller rolls back, so a topic made for it
-- goes too).

CREATE FUNCTION ms_archive_post(
	p_group bigint, p_topic bigint, p_subject_key text,
	p_message_id text, p_in_reply_to text, p_refs text[], p_from text,
	p_from_name text, p_subject text, p_sent_at timestamptz,
	p_source text, p_raw bytea, p_size integer, p_body_text text,
	p_body_html text, p_has_attachments boolean, p_special boolean,
	p_no_email boolean)
RETURNS TABLE (o_id bigint, o_number bigint, o_topic bigint,
	o_queued boolean)
LANGUAGE plpgsql AS $$
DECLARE
	v_author bigint;
BEGIN
	SELECT a.id INTO v_author FROM accounts a
	    WHERE lower(a.email) = lower(p_from);
	o_topic := p_topic;
	IF o_topic IS NULL THEN
		INSERT INTO topics (group_id, subject, subject_key, started_by)
		    VALUES (p_group, p_subject_key, lower(p_subject_key),
			v_author)
		    RETURNING id INTO o_topic;
	END IF;
	INSERT INTO messages (group_id, topic_id, message_id, in_reply_to,
	    refs, author_id, from_address, from_name, subject, sent_at,
	    source, raw, size, body_text, body_html, has_attachments,
	    special)
	    VALUES (p_group, o_topic, p_message_id, p_in_reply_to, p_refs,
		v_author, p_from, p_from_name, p_subject, p_sent_at,
		p_source, p_raw, p_size, p_body_text, p_body_html,
		p_has_attachments, p_special)
	    ON CONFLICT (group_id, message_id) DO NOTHING
	    RETURNING id, number INTO o_id, o_number;
	IF o_id IS NULL THEN
		RETURN;
	END IF;
	o_queued := false;
	IF NOT p_no_email AND EXISTS (SELECT 1 FROM memberships m
	    WHERE m.group_id = p_group AND m.status = 'active' AND
	    (m.delivery = 'individual' OR
	     (m.delivery = 'special_only' AND p_special))) THEN
		INSERT INTO outbox (kind, group_id, message_id)
		    VALUES ('post', p_group, o_id);
		o_queued := true;
	END IF;
	RETURN NEXT;
END;
$$;

-- The raw message and its text are compressed with lz4 instead of pglz
-- once they pass the TOAST threshold (about 2 kB): pglz_compress was the
-- largest single function of a backend archiving posts, lz4 costs a
-- fraction of it (PostgreSQL 14 and later, built with lz4 as Debian's
-- is).  Rows stored before keep their pglz values; both read the same.
ALTER TABLE messages ALTER COLUMN raw SET COMPRESSION lz4,
	ALTER COLUMN body_text SET COMPRESSION lz4,
	ALTER COLUMN body_html SET COMPRESSION lz4;
ALTER TABLE pending_messages ALTER COLUMN raw SET COMPRESSION lz4;
