-- SPDX-License-Identifier: MIT
--
-- 001_schema.sql - schema v1 of the groups service (PostgreSQL 15).
--
-- The whole domain: domains, accounts, groups and settings, memberships,
-- topics, messages (full-text search), attachments, hashtags, follow/mute,
-- moderation queue, bounces, feeds, digest state, tokens, sessions,
-- activity log, forward rules.  Later migrations extend; never edit this.
-- Conventions (docs/schema.md): bigint identity ids, timestamptz times,
-- closed value sets as text + named CHECK (extendable in a transaction),
-- emails unique on lower(email).  The runner wraps the file in one
-- transaction and owns schema_migrations: no BEGIN/COMMIT here.

-- set_updated_at - trigger: keep updated_at current on every UPDATE.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated_at := now();
	RETURN NEW;
END;
$$;

------------------------------------------------------------------------------
-- Domains served.  smtpd accepts mail only for these; groups and forward
-- rules live under one of them.
------------------------------------------------------------------------------
CREATE TABLE domains (
	name		text PRIMARY KEY
	    CONSTRAINT domains_name_check CHECK (
		name = lower(name) AND length(name) <= 253 AND
		name ~ '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$'),
	created_at	timestamptz NOT NULL DEFAULT now()
);

------------------------------------------------------------------------------
-- Accounts: one per email address, whether or not it ever logs in.
------------------------------------------------------------------------------
CREATE TABLE accounts (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	email		text NOT NULL
	    CONSTRAINT accounts_email_check CHECK (
		length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
	display_name	text NOT NULL DEFAULT ''
	    CONSTRAINT accounts_display_name_check CHECK (
		length(display_name) <= 200),
	-- Argon2id encoded string from crypto_pwhash_str; NULL: no web
	-- password yet (a member who only ever used email).
	password_hash	text
	    CONSTRAINT accounts_password_hash_check CHECK (
		password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
	is_admin	boolean NOT NULL DEFAULT false,
	email_verified	boolean NOT NULL DEFAULT false,
	email_verified_at timestamptz,
	status		text NOT NULL DEFAULT 'active'
	    CONSTRAINT accounts_status_check CHECK (
		status IN ('pending', 'active', 'disabled', 'deleted')),
	timezone	text NOT NULL DEFAULT 'UTC',
	locale		text NOT NULL DEFAULT 'en',
	about		text NOT NULL DEFAULT '',
	failed_logins	integer NOT NULL DEFAULT 0,
	locked_until	timestamptz,
	last_login_at	timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (lower(email));
CREATE TRIGGER accounts_updated_at BEFORE UPDATE ON accounts
	FOR EACH ROW EXECUTE FUNCTION set_updated_at();

------------------------------------------------------------------------------
-- Groups and their settings.  The list address is name@domain; name is
-- lower case and never contains '+' (the command separator).
------------------------------------------------------------------------------
CREATE TABLE groups (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain		text NOT NULL REFERENCES domains (name)
	    ON UPDATE CASCADE ON DELETE RESTRICT,
	name		text NOT NULL
	    CONSTRAINT groups_name_check CHECK (
		name ~ '^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$'),
	title		text NOT NULL DEFAULT ''
	    CONSTRAINT groups_title_check CHECK (length(title) <= 200),
	description	text NOT NULL DEFAULT '',
	status		text NOT NULL DEFAULT 'active'
	    CONSTRAINT groups_status_check CHECK (
		status IN ('active', 'archived', 'disabled')),
	-- privacy
	listed		boolean NOT NULL DEFAULT true,
	archive_visibility text NOT NULL DEFAULT 'public'
	    CONSTRAINT groups_archive_visibility_check CHECK (
		archive_visibility IN ('public', 'members', 'moderators')),
	member_list_visibility text NOT NULL DEFAULT 'moderators'
	    CONSTRAINT groups_member_list_visibility_check CHECK (
		member_list_visibility IN ('members', 'moderators')),
	restricted_membership boolean NOT NULL DEFAULT false,
	join_question	text NOT NULL DEFAULT '',
	-- posting and moderation
	who_can_post	text NOT NULL DEFAULT 'members'
	    CONSTRAINT groups_who_can_post_check CHECK (
		who_can_post IN ('members', 'moderators', 'anyone')),
	nonmember_posts	text NOT NULL DEFAULT 'reject'
	    CONSTRAINT groups_nonmember_posts_check CHECK (
		nonmember_posts IN ('reject', 'moderate')),
	moderate_all	boolean NOT NULL DEFAULT false,
	new_member_posting text NOT NULL DEFAULT 'unmoderated'
	    CONSTRAINT groups_new_member_posting_check CHECK (
		new_member_posting IN ('unmoderated', 'moderated',
		'new_member_moderated')),
	-- approved posts after which new_member_moderated is lifted
	new_member_posts smallint NOT NULL DEFAULT 1
	    CONSTRAINT groups_new_member_posts_check CHECK (
		new_member_posts BETWEEN 1 AND 100),
	pending_expiry_days smallint NOT NULL DEFAULT 14
	    CONSTRAINT groups_pending_expiry_days_check CHECK (
		pending_expiry_days BETWEEN 1 AND 365),
	-- message handling
	subject_tag	text NOT NULL DEFAULT ''
	    CONSTRAINT groups_subject_tag_check CHECK (length(subject_tag) <= 64),
	reply_to	text NOT NULL DEFAULT 'group'
	    CONSTRAINT groups_reply_to_check CHECK (
		reply_to IN ('group', 'sender', 'group_and_sender',
		'moderators')),
	max_message_size integer NOT NULL DEFAULT 26214400
	    CONSTRAINT groups_max_message_size_check CHECK (
		max_message_size BETWEEN 1024 AND 104857600),
	allow_attachments boolean NOT NULL DEFAULT true,
	dmarc_rewrite	text NOT NULL DEFAULT 'when_needed'
	    CONSTRAINT groups_dmarc_rewrite_check CHECK (
		dmarc_rewrite IN ('when_needed', 'always', 'never')),
	footer_template	text NOT NULL DEFAULT ''
	    CONSTRAINT groups_footer_template_check CHECK (
		length(footer_template) <= 16384),
	welcome_message	text NOT NULL DEFAULT '',
	-- digests: sent when digest_max_messages have gathered, or daily at
	-- digest_hour in the group's timezone
	digest_max_messages smallint NOT NULL DEFAULT 12
	    CONSTRAINT groups_digest_max_messages_check CHECK (
		digest_max_messages BETWEEN 1 AND 200),
	digest_hour	smallint NOT NULL DEFAULT 0
	    CONSTRAINT groups_digest_hour_check CHECK (digest_hour BETWEEN 0 AND 23),
	timezone	text NOT NULL DEFAULT 'UTC',
	created_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT groups_domain_name_key UNIQUE (domain, name)
);
CREATE TRIGGER groups_updated_at BEFORE UPDATE ON groups
	FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Per-group counters, apart from groups so that busy posting does not
-- contend with settings updates.  One row per group, made by a trigger.
CREATE TABLE group_counters (
	group_id	bigint PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
	next_message_number bigint NOT NULL DEFAULT 1,
	message_count	bigint NOT NULL DEFAULT 0,
	topic_count	bigint NOT NULL DEFAULT 0,
	last_message_at	timestamptz,
	digest_number	bigint NOT NULL DEFAULT 0,	-- last digest issue sent
	last_digest_at	timestamptz
);

CREATE FUNCTION groups_make_counters() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO group_counters (group_id) VALUES (NEW.id);
	RETURN NULL;
END;
$$;
CREATE TRIGGER groups_counters AFTER INSERT ON groups
	FOR EACH ROW EXECUTE FUNCTION groups_make_counters();

-- Addresses or whole domains ("@example.com") that may not join or post.
CREATE TABLE group_bans (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	pattern		text NOT NULL
	    CONSTRAINT group_bans_pattern_check CHECK (
		pattern = lower(pattern) AND length(pattern) <= 254 AND
		pattern ~ '^[^@[:space:]]*@[^@[:space:]]+$'),
	reason		text NOT NULL DEFAULT '',
	banned_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT group_bans_group_pattern_key UNIQUE (group_id, pattern)
);

------------------------------------------------------------------------------
-- Memberships: an account in a group.  A join request awaiting a moderator
-- is a row with status 'pending_approval' (the pending-members queue); a
-- subscription awaiting the emailed confirmation is 'pending_confirmation'.
------------------------------------------------------------------------------
CREATE TABLE memberships (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	account_id	bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	role		text NOT NULL DEFAULT 'member'
	    CONSTRAINT memberships_role_check CHECK (
		role IN ('owner', 'moderator', 'member')),
	posting		text NOT NULL DEFAULT 'unmoderated'
	    CONSTRAINT memberships_posting_check CHECK (
		posting IN ('unmoderated', 'moderated', 'new_member_moderated',
		'banned')),
	delivery	text NOT NULL DEFAULT 'individual'
	    CONSTRAINT memberships_delivery_check CHECK (
		delivery IN ('individual', 'full_digest', 'plain_digest',
		'daily_summary', 'special_only', 'no_email')),
	following_only	boolean NOT NULL DEFAULT false,
	status		text NOT NULL DEFAULT 'active'
	    CONSTRAINT memberships_status_check CHECK (
		status IN ('active', 'pending_confirmation',
		'pending_approval')),
	join_answer	text NOT NULL DEFAULT '',	-- to groups.join_question
	approved_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	approved_at	timestamptz,
	approved_posts	integer NOT NULL DEFAULT 0,	-- lifts new_member_moderated
	moderator_notes	text NOT NULL DEFAULT '',
	requested_at	timestamptz NOT NULL DEFAULT now(),
	joined_at	timestamptz,			-- when it became active
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT memberships_group_account_key UNIQUE (group_id, account_id),
	CONSTRAINT memberships_joined_check CHECK (
		status <> 'active' OR joined_at IS NOT NULL)
);
CREATE INDEX memberships_account_idx ON memberships (account_id);
CREATE INDEX memberships_staff_idx ON memberships (group_id, role)
	WHERE role <> 'member';
CREATE INDEX memberships_pending_idx ON memberships (group_id, requested_at)
	WHERE status <> 'active';
CREATE INDEX memberships_approved_by_idx ON memberships (approved_by)
	WHERE approved_by IS NOT NULL;
CREATE TRIGGER memberships_updated_at BEFORE UPDATE ON memberships
	FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- memberships_joined - trigger: stamp joined_at when a membership becomes
-- active (on insert or on approval/confirmation).
CREATE FUNCTION memberships_joined() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.status = 'active' AND NEW.joined_at IS NULL THEN
		NEW.joined_at := now();
	END IF;
	RETURN NEW;
END;
$$;
CREATE TRIGGER memberships_joined BEFORE INSERT OR UPDATE OF status
	ON memberships FOR EACH ROW EXECUTE FUNCTION memberships_joined();

-- Digest progress of one digest/summary subscriber: messages numbered above
-- last_message_number are still to be sent.
CREATE TABLE membership_digest (
	membership_id	bigint PRIMARY KEY
	    REFERENCES memberships (id) ON DELETE CASCADE,
	last_message_number bigint NOT NULL DEFAULT 0,
	last_sent_at	timestamptz,
	next_due_at	timestamptz
);
CREATE INDEX membership_digest_due_idx ON membership_digest (next_due_at);

------------------------------------------------------------------------------
-- Hashtags (per group) and their effect on topics.
------------------------------------------------------------------------------
CREATE TABLE hashtags (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	name		text NOT NULL		-- without '#', case kept for display
	    CONSTRAINT hashtags_name_check CHECK (
		length(name) BETWEEN 1 AND 64 AND name !~ '[[:space:]#]'),
	description	text NOT NULL DEFAULT '',
	color		text NOT NULL DEFAULT '',
	moderated	boolean NOT NULL DEFAULT false,	-- posts with it are held
	no_email	boolean NOT NULL DEFAULT false,	-- archived, never mailed
	moderators_only	boolean NOT NULL DEFAULT false,	-- only staff may use it
	expiry_days	integer
	    CONSTRAINT hashtags_expiry_days_check CHECK (
		expiry_days IS NULL OR expiry_days BETWEEN 1 AND 3650),
	expiry_action	text NOT NULL DEFAULT 'lock'
	    CONSTRAINT hashtags_expiry_action_check CHECK (
		expiry_action IN ('lock', 'delete', 'archive')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX hashtags_group_name_key ON hashtags (group_id, lower(name));
CREATE TRIGGER hashtags_updated_at BEFORE UPDATE ON hashtags
	FOR EACH ROW EXECUTE FUNCTION set_updated_at();

------------------------------------------------------------------------------
-- Topics (threads).  subject_key is the subject with Re:/Fwd:/tags removed,
-- for threading replies that lost their References.
------------------------------------------------------------------------------
CREATE TABLE topics (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	subject		text NOT NULL DEFAULT '',
	subject_key	text NOT NULL DEFAULT '',
	started_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	locked		boolean NOT NULL DEFAULT false,	-- no more replies
	sticky		boolean NOT NULL DEFAULT false,	-- pinned to the top
	archived_at	timestamptz,			-- hidden from the list
	message_count	integer NOT NULL DEFAULT 0,	-- kept by trigger
	created_at	timestamptz NOT NULL DEFAULT now(),
	last_activity_at timestamptz NOT NULL DEFAULT now(),
	-- expiry from a hashtag: expirethreads acts on expires_at <= now()
	-- where expired_at IS NULL, then sets expired_at
	expires_at	timestamptz,
	expiry_action	text
	    CONSTRAINT topics_expiry_action_check CHECK (
		expiry_action IS NULL OR
		expiry_action IN ('lock', 'delete', 'archive')),
	expired_at	timestamptz,
	CONSTRAINT topics_expiry_check CHECK (
		expires_at IS NULL OR expiry_action IS NOT NULL)
);
CREATE INDEX topics_group_activity_idx ON topics
	(group_id, sticky DESC, last_activity_at DESC);
CREATE INDEX topics_group_subject_idx ON topics
	(group_id, subject_key, last_activity_at DESC);
CREATE INDEX topics_expiry_idx ON topics (expires_at)
	WHERE expires_at IS NOT NULL AND expired_at IS NULL;
CREATE INDEX topics_started_by_idx ON topics (started_by)
	WHERE started_by IS NOT NULL;

CREATE TABLE topic_hashtags (
	topic_id	bigint NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
	hashtag_id	bigint NOT NULL REFERENCES hashtags (id) ON DELETE CASCADE,
	added_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (topic_id, hashtag_id)
);
CREATE INDEX topic_hashtags_hashtag_idx ON topic_hashtags (hashtag_id);

-- Follow or mute a topic (or hashtag) per membership; following_only
-- members get only followed topics.
CREATE TABLE topic_subscriptions (
	membership_id	bigint NOT NULL
	    REFERENCES memberships (id) ON DELETE CASCADE,
	topic_id	bigint NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
	mode		text NOT NULL
	    CONSTRAINT topic_subscriptions_mode_check CHECK (
		mode IN ('follow', 'mute')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (membership_id, topic_id)
);
CREATE INDEX topic_subscriptions_topic_idx ON topic_subscriptions (topic_id);

CREATE TABLE hashtag_subscriptions (
	membership_id	bigint NOT NULL
	    REFERENCES memberships (id) ON DELETE CASCADE,
	hashtag_id	bigint NOT NULL REFERENCES hashtags (id) ON DELETE CASCADE,
	mode		text NOT NULL
	    CONSTRAINT hashtag_subscriptions_mode_check CHECK (
		mode IN ('follow', 'mute')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (membership_id, hashtag_id)
);
CREATE INDEX hashtag_subscriptions_hashtag_idx ON hashtag_subscriptions
	(hashtag_id);

------------------------------------------------------------------------------
-- Messages: the archive.  number is allocated per group by a trigger when
-- the insert leaves it NULL (gap-free: the counter row stays locked until
-- the inserting transaction ends).  Message-ID is unique per group, which
-- makes a retried submission detectable (INSERT ... ON CONFLICT).
------------------------------------------------------------------------------
CREATE TABLE messages (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	number		bigint NOT NULL
	    CONSTRAINT messages_number_check CHECK (number > 0),
	topic_id	bigint NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
	message_id	text NOT NULL		-- without the angle brackets
	    CONSTRAINT messages_message_id_check CHECK (
		length(message_id) BETWEEN 1 AND 998),
	in_reply_to	text,
	refs		text[] NOT NULL DEFAULT '{}',	-- References, in order
	author_id	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	from_address	text NOT NULL,
	from_name	text NOT NULL DEFAULT '',
	subject		text NOT NULL DEFAULT '',
	sent_at		timestamptz,		-- Date header, if it parsed
	received_at	timestamptz NOT NULL DEFAULT now(),
	source		text NOT NULL DEFAULT 'email'
	    CONSTRAINT messages_source_check CHECK (
		source IN ('email', 'web', 'feed', 'system')),
	special		boolean NOT NULL DEFAULT false,	-- special notice
	approved_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	-- the message as received; raw_path when kept outside the database
	raw		bytea,
	raw_path	text,
	size		integer NOT NULL DEFAULT 0,
	body_text	text NOT NULL DEFAULT '',
	body_html	text,			-- as received; sanitised on display
	has_attachments	boolean NOT NULL DEFAULT false,
	edited_at	timestamptz,
	deleted_at	timestamptz,		-- hidden, number kept
	-- Only the first 100000 characters of a body are indexed: a tsvector
	-- is limited to 1 MB and an oversize one would fail the insert.
	search		tsvector GENERATED ALWAYS AS (
		setweight(to_tsvector('simple'::regconfig,
		    left(subject, 1000)), 'A') ||
		setweight(to_tsvector('simple'::regconfig,
		    left(from_name, 200)), 'B') ||
		setweight(to_tsvector('simple'::regconfig,
		    left(body_text, 100000)), 'D')) STORED,
	CONSTRAINT messages_group_number_key UNIQUE (group_id, number),
	CONSTRAINT messages_group_message_id_key UNIQUE (group_id, message_id),
	CONSTRAINT messages_raw_check CHECK (
		raw IS NOT NULL OR raw_path IS NOT NULL)
);
CREATE INDEX messages_topic_idx ON messages (topic_id, number);
CREATE INDEX messages_author_idx ON messages (author_id)
	WHERE author_id IS NOT NULL;
CREATE INDEX messages_approved_by_idx ON messages (approved_by)
	WHERE approved_by IS NOT NULL;
CREATE INDEX messages_search_idx ON messages USING gin (search);

-- messages_number - trigger: allocate the next number of the group, or
-- move the counter past an explicitly given one (imports).
CREATE FUNCTION messages_number() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.number IS NULL THEN
		UPDATE group_counters
		    SET next_message_number = next_message_number + 1
		    WHERE group_id = NEW.group_id
		    RETURNING next_message_number - 1 INTO NEW.number;
		IF NEW.number IS NULL THEN
			RAISE EXCEPTION 'no counters for group %', NEW.group_id;
		END IF;
	ELSE
		UPDATE group_counters
		    SET next_message_number =
			greatest(next_message_number, NEW.number + 1)
		    WHERE group_id = NEW.group_id;
	END IF;
	RETURN NEW;
END;
$$;
CREATE TRIGGER messages_number BEFORE INSERT ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_number();

-- messages_counts - trigger: keep topic and group message counts and
-- activity times in step with inserts, deletes and moves between topics.
CREATE FUNCTION messages_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE topics SET message_count = message_count + 1,
		    last_activity_at = greatest(last_activity_at,
			NEW.received_at)
		    WHERE id = NEW.topic_id;
		UPDATE group_counters SET message_count = message_count + 1,
		    last_message_at = greatest(last_message_at,
			NEW.received_at)
		    WHERE group_id = NEW.group_id;
	ELSIF TG_OP = 'DELETE' THEN
		UPDATE topics SET message_count = message_count - 1
		    WHERE id = OLD.topic_id;
		UPDATE group_counters SET message_count = message_count - 1
		    WHERE group_id = OLD.group_id;
	ELSIF NEW.topic_id <> OLD.topic_id THEN
		UPDATE topics SET message_count = message_count - 1
		    WHERE id = OLD.topic_id;
		UPDATE topics SET message_count = message_count + 1,
		    last_activity_at = greatest(last_activity_at,
			NEW.received_at)
		    WHERE id = NEW.topic_id;
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER messages_counts
	AFTER INSERT OR DELETE OR UPDATE OF topic_id ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_counts();

-- topics_counts - trigger: topic_count of the group.
CREATE FUNCTION topics_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE group_counters SET topic_count = topic_count + 1
		    WHERE group_id = NEW.group_id;
	ELSE
		UPDATE group_counters SET topic_count = topic_count - 1
		    WHERE group_id = OLD.group_id;
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER topics_counts AFTER INSERT OR DELETE ON topics
	FOR EACH ROW EXECUTE FUNCTION topics_counts();

CREATE TABLE attachments (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	message_id	bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	position	smallint NOT NULL,	-- order within the message
	filename	text NOT NULL DEFAULT '',
	content_type	text NOT NULL DEFAULT 'application/octet-stream',
	disposition	text NOT NULL DEFAULT 'attachment'
	    CONSTRAINT attachments_disposition_check CHECK (
		disposition IN ('attachment', 'inline')),
	content_id	text,			-- for cid: references
	size		bigint NOT NULL
	    CONSTRAINT attachments_size_check CHECK (size >= 0),
	sha256		text NOT NULL
	    CONSTRAINT attachments_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	content		bytea,
	storage_path	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT attachments_message_position_key UNIQUE (message_id, position),
	CONSTRAINT attachments_content_check CHECK (
		content IS NOT NULL OR storage_path IS NOT NULL)
);
CREATE INDEX attachments_sha256_idx ON attachments (sha256);

------------------------------------------------------------------------------
-- Moderation queue: posts held for a moderator.  (Pending members are
-- memberships with status 'pending_approval'.)
------------------------------------------------------------------------------
CREATE TABLE pending_messages (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	account_id	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	from_address	text NOT NULL,
	from_name	text NOT NULL DEFAULT '',
	subject		text NOT NULL DEFAULT '',
	message_id	text,
	envelope_from	text,
	source		text NOT NULL DEFAULT 'email'
	    CONSTRAINT pending_messages_source_check CHECK (
		source IN ('email', 'web', 'feed', 'system')),
	raw		bytea NOT NULL,
	-- why it was held: moderated_group, moderated_member, new_member,
	-- non_member, hashtag, size, attachment, ... (free-form code)
	reason		text NOT NULL,
	reason_detail	text NOT NULL DEFAULT '',
	status		text NOT NULL DEFAULT 'pending'
	    CONSTRAINT pending_messages_status_check CHECK (
		status IN ('pending', 'approved', 'rejected', 'expired')),
	decided_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	decided_at	timestamptz,
	decision_note	text NOT NULL DEFAULT '',	-- sent to the poster
	result_message_id bigint REFERENCES messages (id) ON DELETE SET NULL,
	received_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz,
	CONSTRAINT pending_messages_decided_check CHECK (
		status = 'pending' OR decided_at IS NOT NULL)
);
CREATE INDEX pending_messages_queue_idx ON pending_messages
	(group_id, received_at) WHERE status = 'pending';
CREATE INDEX pending_messages_expiry_idx ON pending_messages (expires_at)
	WHERE status = 'pending';
CREATE INDEX pending_messages_account_idx ON pending_messages (account_id)
	WHERE account_id IS NOT NULL;
CREATE INDEX pending_messages_message_id_idx ON pending_messages
	(group_id, message_id);
CREATE INDEX pending_messages_decided_by_idx ON pending_messages (decided_by)
	WHERE decided_by IS NOT NULL;
CREATE INDEX pending_messages_result_idx ON pending_messages
	(result_message_id) WHERE result_message_id IS NOT NULL;

------------------------------------------------------------------------------
-- Bounces.  State is per account (an address bounces for every group it
-- is in); each event keeps the group it came through when known.
------------------------------------------------------------------------------
CREATE TABLE bounce_events (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id	bigint REFERENCES accounts (id) ON DELETE CASCADE,
	email		text NOT NULL,		-- the address that bounced
	group_id	bigint REFERENCES groups (id) ON DELETE SET NULL,
	received_at	timestamptz NOT NULL DEFAULT now(),
	type		text NOT NULL
	    CONSTRAINT bounce_events_type_check CHECK (type IN ('hard', 'soft')),
	source		text NOT NULL
	    CONSTRAINT bounce_events_source_check CHECK (
		source IN ('dsn', 'verp', 'karl', 'probe')),
	-- RFC 3464 fields when the bounce was a DSN
	dsn_action	text,			-- failed, delayed, ...
	dsn_status	text,			-- e.g. 5.1.1
	remote_mta	text,
	reporting_mta	text,
	diagnostic	text NOT NULL DEFAULT '',
	original_message_id text
);
CREATE INDEX bounce_events_account_idx ON bounce_events
	(account_id, received_at);
CREATE INDEX bounce_events_received_idx ON bounce_events (received_at);
CREATE INDEX bounce_events_group_idx ON bounce_events (group_id)
	WHERE group_id IS NOT NULL;

CREATE TABLE bounce_state (
	account_id	bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	status		text NOT NULL DEFAULT 'ok'
	    CONSTRAINT bounce_state_status_check CHECK (
		status IN ('ok', 'bouncing', 'bounced')),
	score		numeric(8, 2) NOT NULL DEFAULT 0,
	first_bounce_at	timestamptz,
	last_bounce_at	timestamptz,
	bouncing_since	timestamptz,
	bounced_at	timestamptz,
	probes_sent	integer NOT NULL DEFAULT 0,
	last_probe_at	timestamptz,
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bounce_state_status_idx ON bounce_state (status)
	WHERE status <> 'ok';
CREATE TRIGGER bounce_state_updated_at BEFORE UPDATE ON bounce_state
	FOR EACH ROW EXECUTE FUNCTION set_updated_at();

------------------------------------------------------------------------------
-- Feeds integrated with groups (RSS/Atom and Instagram), and the items
-- already turned into messages.
------------------------------------------------------------------------------
CREATE TABLE feeds (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	kind		text NOT NULL
	    CONSTRAINT feeds_kind_check CHECK (kind IN ('rss', 'instagram')),
	url		text NOT NULL		-- feed URL or Instagram account
	    CONSTRAINT feeds_url_check CHECK (length(url) BETWEEN 1 AND 2048),
	title		text NOT NULL DEFAULT '',
	enabled		boolean NOT NULL DEFAULT true,
	hashtag_id	bigint REFERENCES hashtags (id) ON DELETE SET NULL,
	poster_id	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	full_text	boolean NOT NULL DEFAULT true,
	interval_minutes integer NOT NULL DEFAULT 30
	    CONSTRAINT feeds_interval_minutes_check CHECK (
		interval_minutes BETWEEN 5 AND 10080),
	next_fetch_at	timestamptz NOT NULL DEFAULT now(),
	last_fetch_at	timestamptz,
	last_success_at	timestamptz,
	etag		text,
	last_modified	text,
	last_status	integer,		-- HTTP status of the last fetch
	last_error	text NOT NULL DEFAULT '',
	error_count	integer NOT NULL DEFAULT 0,
	created_by	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT feeds_group_kind_url_key UNIQUE (group_id, kind, url)
);
CREATE INDEX feeds_due_idx ON feeds (kind, next_fetch_at) WHERE enabled;
CREATE TRIGGER feeds_updated_at BEFORE UPDATE ON feeds
	FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE feed_items (
	feed_id		bigint NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
	-- the item's guid/id/link; crawlers hash longer ones
	guid		text NOT NULL
	    CONSTRAINT feed_items_guid_check CHECK (length(guid) BETWEEN 1 AND 1024),
	seen_at		timestamptz NOT NULL DEFAULT now(),
	message_id	bigint REFERENCES messages (id) ON DELETE SET NULL,
	PRIMARY KEY (feed_id, guid)
);
CREATE INDEX feed_items_seen_idx ON feed_items (seen_at);
CREATE INDEX feed_items_message_idx ON feed_items (message_id)
	WHERE message_id IS NOT NULL;

------------------------------------------------------------------------------
-- One-time tokens kept in the database (the HMAC-signed stateless tokens
-- of token.h need no row).  Only a SHA-256 of the token is stored.
------------------------------------------------------------------------------
CREATE TABLE tokens (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	purpose		text NOT NULL
	    CONSTRAINT tokens_purpose_check CHECK (
		purpose IN ('verify_email', 'reset_password', 'login',
		'confirm_subscription', 'change_email', 'api')),
	token_hash	text NOT NULL
	    CONSTRAINT tokens_token_hash_check CHECK (
		token_hash ~ '^[0-9a-f]{64}$'),
	account_id	bigint REFERENCES accounts (id) ON DELETE CASCADE,
	group_id	bigint REFERENCES groups (id) ON DELETE CASCADE,
	email		text,			-- e.g. the new address
	data		jsonb NOT NULL DEFAULT '{}',
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	used_at		timestamptz,
	CONSTRAINT tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX tokens_account_idx ON tokens (account_id)
	WHERE account_id IS NOT NULL;
CREATE INDEX tokens_group_idx ON tokens (group_id) WHERE group_id IS NOT NULL;
CREATE INDEX tokens_expires_idx ON tokens (expires_at);

-- Web sessions: the cookie holds a random id, the table its SHA-256.
CREATE TABLE sessions (
	id_hash		text PRIMARY KEY
	    CONSTRAINT sessions_id_hash_check CHECK (id_hash ~ '^[0-9a-f]{64}$'),
	account_id	bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	csrf_secret	text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	last_seen_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	user_agent	text NOT NULL DEFAULT ''
	    CONSTRAINT sessions_user_agent_check CHECK (length(user_agent) <= 512),
	ip		inet
);
CREATE INDEX sessions_account_idx ON sessions (account_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

------------------------------------------------------------------------------
-- Activity log: who did what, per group (group_id NULL: site-wide).
-- action is a dotted code such as member.join, message.approve,
-- group.settings; details carries the specifics.
------------------------------------------------------------------------------
CREATE TABLE activity_log (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id	bigint REFERENCES groups (id) ON DELETE CASCADE,
	actor_id	bigint REFERENCES accounts (id) ON DELETE SET NULL,
	action		text NOT NULL
	    CONSTRAINT activity_log_action_check CHECK (
		action ~ '^[a-z][a-z0-9_.]{0,63}$'),
	details		jsonb NOT NULL DEFAULT '{}',
	ip		inet,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_log_group_idx ON activity_log (group_id, created_at);
CREATE INDEX activity_log_actor_idx ON activity_log (actor_id, created_at)
	WHERE actor_id IS NOT NULL;
CREATE INDEX activity_log_created_idx ON activity_log (created_at);

------------------------------------------------------------------------------
-- Forward rules: local_part@domain goes to a group or to an address.
-- smtpd consults them after group addresses.
------------------------------------------------------------------------------
CREATE TABLE forward_rules (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain		text NOT NULL REFERENCES domains (name)
	    ON UPDATE CASCADE ON DELETE CASCADE,
	local_part	text NOT NULL
	    CONSTRAINT forward_rules_local_part_check CHECK (
		local_part = lower(local_part) AND
		local_part ~ '^[^@[:space:]]{1,64}$'),
	target_group_id	bigint REFERENCES groups (id) ON DELETE CASCADE,
	target_address	text
	    CONSTRAINT forward_rules_target_address_check CHECK (
		target_address IS NULL OR
		target_address ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
	enabled		boolean NOT NULL DEFAULT true,
	description	text NOT NULL DEFAULT '',
	created_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT forward_rules_domain_local_part_key UNIQUE (domain, local_part),
	CONSTRAINT forward_rules_target_check CHECK (
		(target_group_id IS NULL) <> (target_address IS NULL))
);
CREATE INDEX forward_rules_group_idx ON forward_rules (target_group_id)
	WHERE target_group_id IS NOT NULL;
