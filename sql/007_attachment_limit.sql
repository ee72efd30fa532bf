-- SPDX-License-Identifier: MIT
--
-- 007_attachment_limit.sql - a group's limit on each attachment.
--
-- groups.max_attachment_size: the largest decoded size, in bytes, of any
-- one attachment a post may carry (1 KiB to 100 MiB, as
-- max_message_size).  NULL, the default, is no limit of its own: the
-- message's size limit is the only one.  A post with a larger attachment
-- is rejected with a notice to the poster (docs/messageserver.md).

ALTER TABLE groups ADD COLUMN max_attachment_size integer
    CONSTRAINT groups_max_attachment_size_check CHECK (
	max_attachment_size BETWEEN 1024 AND 104857600);
