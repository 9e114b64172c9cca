-- A PostgreSQL database of a region's size (5,000 users, 5,000 devices, 15,000 plans of
-- four participants, every key minted and about nine in ten envelopes sealed; two chain
-- entries per plan, 20 bundles per document, 1.2 million in all, with their tails), for
-- reading the plans of the sync's statements where the planner has real tables to weigh;
-- `load_bench`'s network is fifty plans. Device `id16(1, 1)` is a regisseur's: it minted
-- the keys of 55 plans (220 keys); `id16(1, 100)` an ordinary worker's (14 plans, 48 keys).
--
--   url=$(scripts/postgres.sh start /tmp/region 54399)
--   psql "$url" -c 'CREATE DATABASE region'
--   eenplan-server serve --data /tmp/region-data --database "${url%/*}/region"
--     (it migrates the database to this build's schema when it opens; stop it with ^C)
--   psql "${url%/*}/region" -f scripts/pg-region-scale.sql      (about half a minute)
--   then, in psql: SET plan_cache_mode = force_generic_plan; PREPARE q(bytea) AS <statement>;
--   EXECUTE q(id16(1, 1)); with \timing (the server's connections plan generically too).
--   scripts/postgres.sh stop /tmp/region
--
-- (2026-12-05: `devices_missing_held_keys`, medians of 20 executions: the regisseur's
-- 11.8 ms before the sets-and-difference form, 4.8 ms after; the worker's 1.6 and 1.1 ms.
-- 2026-12-06: every branch of `SYNC_FACTS` and `SYNC_SESSION` probes an index here; the
-- worker's answer facts with its 56 documents' news and four tails 0.43 ms per execution,
-- its session 0.42 ms under EXPLAIN ANALYZE.)
--
-- The schema's triggers (key-share versions, tails) are off while it fills the tables: the
-- versions start at 0 and the tails are counted at the end.
SET session_replication_role = replica;
CREATE OR REPLACE FUNCTION id16(prefix int, i bigint) RETURNS bytea AS $$
  SELECT decode(lpad(to_hex(prefix), 8, '0') || lpad(to_hex(i), 24, '0'), 'hex') $$ LANGUAGE sql IMMUTABLE;
INSERT INTO orgs (org_id, name, lease_hours) VALUES (1, 'Regio', 72);
INSERT INTO users (user_id, org_id, name, role)
  SELECT i, 1, 'u' || i, CASE WHEN i <= 3000 THEN 'wijkteam' WHEN i <= 4000 THEN 'ggz' ELSE 'politie' END
  FROM generate_series(1, 5000) i;
INSERT INTO devices (device_id, user_id, signing_public, agreement_public, state, created_at)
  SELECT id16(1, i), i, '\x00', '\x00', 'active', 0 FROM generate_series(1, 4000) i;
-- users 4001..5000 (politie) get a device each too, so every user has one
INSERT INTO devices (device_id, user_id, signing_public, agreement_public, state, created_at)
  SELECT id16(1, i), i, '\x00', '\x00', 'active', 0 FROM generate_series(4001, 5000) i;
INSERT INTO plans (plan_id, creator_user, created_by, created_at, level)
  SELECT id16(2, i), CASE WHEN i <= 50 THEN 1 ELSE 1 + (i % 3000) END,
         id16(1, CASE WHEN i <= 50 THEN 1 ELSE 1 + (i % 3000) END), 0, 'regulier'
  FROM generate_series(1, 15000) i;
INSERT INTO participants (plan_id, user_id, plan_role, granted_at_seq)
  SELECT p.plan_id, p.creator_user, 'regisseur', 1 FROM plans p;
INSERT INTO participants (plan_id, user_id, plan_role, granted_at_seq)
  SELECT id16(2, i), 1 + ((i * k) % 5000), 'lid', 1
  FROM generate_series(1, 15000) i, (VALUES (7), (13), (31)) AS m(k)
  ON CONFLICT DO NOTHING;
INSERT INTO policy_access (level, role, compartment, may_write) VALUES
  ('regulier', 'wijkteam', 0, 1), ('regulier', 'wijkteam', 1, 1), ('regulier', 'wijkteam', 2, 1), ('regulier', 'wijkteam', 3, 1),
  ('regulier', 'ggz', 0, 1), ('regulier', 'ggz', 1, 1),
  ('regulier', 'politie', 0, 1), ('regulier', 'politie', 3, 1);
INSERT INTO commitments (plan_id, compartment, epoch, minter_device, signed, stored_at)
  SELECT p.plan_id, c, 1, p.created_by, '\x00', 0 FROM plans p, generate_series(0, 3) c;
INSERT INTO envelopes (recipient, plan_id, compartment, epoch, bytes, position)
  SELECT d.device_id, pa.plan_id, a.compartment, 1, '\x00', 0
  FROM participants pa JOIN users u ON u.user_id = pa.user_id
  JOIN policy_access a ON a.role = u.role AND a.level = 'regulier'
  JOIN devices d ON d.user_id = pa.user_id
  JOIN plans pl ON pl.plan_id = pa.plan_id
  WHERE d.device_id <> pl.created_by
    AND (hashtext(encode(pa.plan_id, 'hex') || d.user_id::text) % 10) <> 0;
INSERT INTO policy (id, version, signed, installed_at) VALUES (1, 3, '\x00', 0) ON CONFLICT DO NOTHING;
INSERT INTO log_head (id, head) VALUES (1, 1200000) ON CONFLICT (id) DO UPDATE SET head = 1200000;
INSERT INTO audit_keys (org_id, version, signed, stored_at) VALUES (1, 1, '\x00', 0);
INSERT INTO membership (plan_id, seq, signed, log_seq)
  SELECT id16(2, i), s, decode(repeat('ab', 200), 'hex'), i * 80 + s
  FROM generate_series(1, 15000) i, generate_series(1, 2) s;
INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, size, bytes, received_at)
  SELECT row_number() OVER (), p.plan_id, c, id16(9, row_number() OVER ()), p.created_by, 1, 0, NULL, 120,
         decode(repeat('cd', 60), 'hex'), 0
  FROM plans p, generate_series(0, 3) c, generate_series(1, 20) n;
INSERT INTO document_tails (plan_id, compartment, covers, snapshot_size, bundles, bytes)
  SELECT plan_id, compartment, 0, NULL, count(*), sum(size) FROM bundles GROUP BY plan_id, compartment;
RESET session_replication_role;
VACUUM (ANALYZE);
