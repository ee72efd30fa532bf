-- SPDX-License-Identifier: MIT
--
-- 009_bounce_address.sql - "bounces" is not a group name.
--
-- Every copy karl sends has the envelope sender bounces+<token>@domain
-- (docs/bounces.md), the same local part for every group of a domain, so
-- no group may be called "bounces".  NOT VALID: a site that already has
-- such a group keeps it (its posts still route; its bounces do not
-- collide, since a token always follows the plus), and no new one can be
-- made or renamed to it.

ALTER TABLE groups ADD CONSTRAINT groups_name_reserved_check
    CHECK (name <> 'bounces') NOT VALID;
