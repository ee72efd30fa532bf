# SPDX-License-Identifier: MIT
"""test_migrations.py - groupsadmin against a real PostgreSQL 15.

Starts a private, throwaway cluster (unix socket only, in a temp dir) for
the module, gives each test its own database and configuration file, and
drives the real groupsadmin binary: migrate (twice, concurrently, with a
changed, a failing and an out-of-order file), status, seed-demo (twice,
with a generated and a given password), hash-password, and the schema's
own triggers (message numbering, counters, search).  The binary is taken
from $GROUPS_BIN (a directory), default build/bin of this repository.
"""
import os
import shutil
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SQL_DIR = REPO / "sql"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
GROUPSADMIN = Path(os.environ.get("GROUPS_BIN", REPO / "build" / "bin")) \
    / "groupsadmin"
TIMEOUT = 60

EXPECTED_TABLES = {
    "domains", "accounts", "groups", "group_counters", "group_bans",
    "memberships", "membership_digest", "hashtags", "topics",
    "topic_hashtags", "topic_subscriptions", "hashtag_subscriptions",
    "messages", "attachments", "pending_messages", "bounce_events",
    "bounce_state", "feeds", "feed_items", "tokens", "sessions",
    "activity_log", "forward_rules", "schema_migrations",
}


def as_postgres(cmd):
    """initdb and postgres refuse to run as root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Cluster:
    def __init__(self, top):
        self.top = Path(top)
        self.data = self.top / "data"
        self.sock = self.top / "sock"
        self.port = 5432    # only names the socket file; no TCP listener

    def start(self):
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.top, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        subprocess.run(as_postgres([
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
            check=True, capture_output=True, timeout=TIMEOUT)
        subprocess.run(as_postgres([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data),
            "-l", str(self.top / "pg.log"), "-w", "-t", "30", "-o",
            f"-p {self.port} -k {self.sock} -c listen_addresses='' "
            "-c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off", "start"]),
            check=True, capture_output=True, timeout=TIMEOUT)

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            subprocess.run(as_postgres([
                str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                "-m", "immediate", "-w", "stop"]),
                capture_output=True, timeout=TIMEOUT)

    def psql(self, sql, db="postgres"):
        """Rows of sql as lists of strings (unaligned, tab-separated)."""
        r = subprocess.run([
            str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-F", "\t",
            "-v", "ON_ERROR_STOP=1", "-h", str(self.sock),
            "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
        return [line.split("\t") for line in r.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def cluster():
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 server not found in {PG_BIN} "
                    "(make deps)")
    if not GROUPSADMIN.exists():
        pytest.fail(f"{GROUPSADMIN} not built (make all)")
    top = tempfile.mkdtemp(prefix="ga-pg-", dir="/tmp")
    os.chmod(top, 0o755)    # postgres must traverse it
    c = Cluster(top)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(top, ignore_errors=True)


class Env:
    """One database and a groupsadmin configuration pointing at it."""

    def __init__(self, cluster, tmp):
        self.cluster = cluster
        self.tmp = Path(tmp)
        self.db = "t_" + uuid.uuid4().hex[:12]
        cluster.psql(f"CREATE DATABASE {self.db}")
        (self.tmp / "var").mkdir()
        secret = self.tmp / "secret"
        secret.write_text(os.urandom(32).hex() + "\n")
        secret.chmod(0o600)
        self.conf = self.tmp / "groups.conf"
        self.conf.write_text(
            f"var_dir = {self.tmp / 'var'}\n"
            f"secret_file = {secret}\n"
            f"db_conninfo = host={cluster.sock} port={cluster.port} "
            f"dbname={self.db} user=postgres\n")

    def run(self, *args, stdin=None, env=None):
        e = dict(os.environ)
        e.pop("GROUPS_DEMO_PASSWORD", None)
        e.update(env or {})
        return subprocess.run(
            [str(GROUPSADMIN), "-f", str(self.conf)] + list(args),
            input=stdin, capture_output=True, text=True, env=e,
            timeout=TIMEOUT)

    def psql(self, sql):
        return self.cluster.psql(sql, self.db)

    def sql_copy(self):
        """A private copy of sql/ that a test may change."""
        d = self.tmp / "sql"
        shutil.copytree(SQL_DIR, d)
        return d


@pytest.fixture
def env(cluster, tmp_path):
    return Env(cluster, tmp_path)


def sql_files():
    return sorted(p.name for p in SQL_DIR.glob("[0-9]*_*.sql"))


def test_migrate_twice_second_is_noop(env):
    r = env.run("migrate", str(SQL_DIR))
    assert r.returncode == 0, r.stderr
    applied = [line.split()[1] for line in r.stdout.splitlines()
               if line.startswith("applied ")]
    assert applied == sql_files()

    r = env.run("migrate", str(SQL_DIR))
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout
    assert "applied " not in r.stdout

    rows = env.psql("SELECT version, name, length(checksum) "
                    "FROM schema_migrations ORDER BY version")
    assert [row[1] for row in rows] == sql_files()
    assert all(row[2] == "64" for row in rows)


def test_tables_exist(env):
    assert env.run("migrate", str(SQL_DIR)).returncode == 0
    tables = {row[0] for row in env.psql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert EXPECTED_TABLES <= tables
    # the search column has its GIN index
    assert env.psql("SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'messages_search_idx'")[0][0] \
        .find("USING gin") > 0


def test_status(env):
    r = env.run("status")
    assert r.returncode == 0, r.stderr
    assert "no migrations applied" in r.stdout
    r = env.run("status", str(SQL_DIR))
    assert r.returncode == 0, r.stderr
    assert "pending" in r.stdout
    assert env.run("migrate", str(SQL_DIR)).returncode == 0
    r = env.run("status", str(SQL_DIR))
    assert r.returncode == 0, r.stderr
    assert "001_schema.sql" in r.stdout
    assert "up to date" in r.stdout
    assert "pending" not in r.stdout


def test_changed_migration_is_refused(env):
    d = env.sql_copy()
    assert env.run("migrate", str(d)).returncode == 0
    with open(d / "001_schema.sql", "a") as f:
        f.write("-- changed after it was applied\n")
    (d / "999_new.sql").write_text("CREATE TABLE never_made (id int);\n")
    r = env.run("migrate", str(d))
    assert r.returncode == 1
    assert "001_schema.sql was changed" in r.stderr
    assert env.psql("SELECT to_regclass('never_made') IS NULL") == [["t"]]
    assert env.psql("SELECT count(*) FROM schema_migrations "
                    "WHERE version = 999") == [["0"]]
    assert "CHANGED" in env.run("status", str(d)).stdout


def test_failing_migration_rolls_back(env):
    d = env.sql_copy()
    (d / "998_bad.sql").write_text(
        "CREATE TABLE half_made (id int);\n"
        "\n"
        "CREATE TABLE broken (id no_such_type);\n")
    r = env.run("migrate", str(d))
    assert r.returncode == 1
    assert "998_bad.sql:3:" in r.stderr     # the failing line
    assert "no_such_type" in r.stderr
    # the earlier files stay applied, the failing one left nothing
    assert env.psql("SELECT to_regclass('accounts') IS NOT NULL, "
                    "to_regclass('half_made') IS NULL") == [["t", "t"]]
    assert env.psql("SELECT max(version) FROM schema_migrations") \
        != [["998"]]


def test_transaction_statements_refused(env):
    d = env.sql_copy()
    (d / "998_commit.sql").write_text("CREATE TABLE c1 (id int);\nCOMMIT;\n")
    r = env.run("migrate", str(d))
    assert r.returncode == 1
    assert "998_commit.sql:2" in r.stderr
    assert env.psql("SELECT to_regclass('c1') IS NULL") == [["t"]]


def test_out_of_order_migration_refused(env):
    d = env.sql_copy()
    (d / "999_last.sql").write_text("CREATE TABLE last_one (id int);\n")
    assert env.run("migrate", str(d)).returncode == 0
    (d / "998_late.sql").write_text("CREATE TABLE late (id int);\n")
    r = env.run("migrate", str(d))
    assert r.returncode == 1
    assert "renumber" in r.stderr
    assert env.psql("SELECT to_regclass('late') IS NULL") == [["t"]]


def test_concurrent_runners_apply_once(env):
    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(lambda _: env.run("migrate", str(SQL_DIR)),
                              range(4)))
    assert all(r.returncode == 0 for r in results), \
        [r.stderr for r in results]
    appliers = [r for r in results if "applied 001_schema.sql" in r.stdout]
    assert len(appliers) == 1
    assert env.psql("SELECT count(*) FROM schema_migrations") == \
        [[str(len(sql_files()))]]


def verify_password(encoded, password):
    pwhash = pytest.importorskip("nacl.pwhash")
    return pwhash.verify(encoded.encode(), password.encode())


def test_seed_demo_twice(env):
    assert env.run("migrate", str(SQL_DIR)).returncode == 0
    r = env.run("seed-demo")
    assert r.returncode == 0, r.stderr
    assert "created admin account admin@" in r.stdout
    assert "created group demo@" in r.stdout
    pw = [line.split(": ", 1)[1] for line in r.stdout.splitlines()
          if line.startswith("password: ")]
    assert len(pw) == 1 and len(pw[0]) >= 16

    rows = env.psql("SELECT email, password_hash, is_admin, email_verified "
                    "FROM accounts")
    assert len(rows) == 1
    email, phash, is_admin, verified = rows[0]
    assert email.startswith("admin@")
    assert phash.startswith("$argon2id$")
    assert is_admin == "t" and verified == "t"
    assert verify_password(phash, pw[0])

    def snapshot():
        return env.psql(
            "SELECT g.name, g.title, m.role, a.email, a.password_hash "
            "FROM groups g JOIN memberships m ON m.group_id = g.id "
            "JOIN accounts a ON a.id = m.account_id ORDER BY a.id")

    before = snapshot()
    assert [row[:4] for row in before] == \
        [["demo", "Demo group", "owner", email]]

    r = env.run("seed-demo")
    assert r.returncode == 0, r.stderr
    assert "already exists" in r.stdout
    assert "password" not in r.stdout
    assert snapshot() == before
    assert env.psql("SELECT count(*) FROM accounts") == [["1"]]
    assert env.psql("SELECT count(*) FROM groups") == [["1"]]


def test_seed_demo_password_from_env(env):
    assert env.run("migrate", str(SQL_DIR)).returncode == 0
    r = env.run("seed-demo", "Owner@Example.com",
                env={"GROUPS_DEMO_PASSWORD": "correct horse battery"})
    assert r.returncode == 0, r.stderr
    assert "correct horse" not in r.stdout
    phash = env.psql("SELECT password_hash FROM accounts "
                     "WHERE lower(email) = 'owner@example.com'")[0][0]
    assert phash.startswith("$argon2id$")
    assert verify_password(phash, "correct horse battery")
    # the same address in another case is the same account
    r = env.run("seed-demo", "owner@example.com")
    assert r.returncode == 0, r.stderr
    assert "already exists" in r.stdout
    assert env.psql("SELECT count(*) FROM accounts") == [["1"]]


def test_seed_demo_before_migrate_fails(env):
    r = env.run("seed-demo")
    assert r.returncode == 1
    assert "password" not in r.stdout


def test_hash_password():
    r = subprocess.run([str(GROUPSADMIN), "hash-password"],
                       input="s3cret words\n", capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("$argon2id$")
    assert verify_password(h, "s3cret words")
    r = subprocess.run([str(GROUPSADMIN), "hash-password"], input="",
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 1


def test_usage_and_config_errors(env, tmp_path):
    assert env.run("no-such-command").returncode == 2
    assert env.run("migrate", "a", "b").returncode == 2
    bad = tmp_path / "bad.conf"
    bad.write_text("no_such_key = 1\n")
    r = subprocess.run([str(GROUPSADMIN), "-f", str(bad), "status"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2
    assert "no_such_key" in r.stderr
    r = subprocess.run([str(GROUPSADMIN), "config-doc"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0
    assert "db_conninfo" in r.stdout


def test_api_secret(env):
    """HMAC-SHA256(secret minus its newline, "api"), as deploy/stack has it."""
    import hashlib
    import hmac
    r = env.run("api-secret")
    assert r.returncode == 0, r.stderr
    key = (env.tmp / "secret").read_text().rstrip("\n").encode()
    assert r.stdout.strip() == hmac.new(key, b"api",
                                        hashlib.sha256).hexdigest()


def test_schema_triggers(env):
    """The contract later code relies on: numbering, counts, search."""
    assert env.run("migrate", str(SQL_DIR)).returncode == 0
    env.psql("""
        INSERT INTO domains (name) VALUES ('example.org');
        INSERT INTO accounts (email) VALUES ('a@example.org');
        INSERT INTO groups (domain, name) VALUES ('example.org', 'dev');
        INSERT INTO memberships (group_id, account_id, role)
            VALUES (1, 1, 'owner');
        INSERT INTO topics (group_id, subject) VALUES (1, 'Hello');
        INSERT INTO messages (group_id, topic_id, message_id, from_address,
            subject, raw, body_text)
        VALUES (1, 1, 'm1@x', 'a@example.org', 'Hello', 'r',
                'the quick brown fox'),
               (1, 1, 'm2@x', 'a@example.org', 'Re: Hello', 'r',
                repeat('lorem ipsum ', 200000));
    """)
    assert env.psql("SELECT number FROM messages ORDER BY id") == \
        [["1"], ["2"]]
    assert env.psql("SELECT joined_at IS NOT NULL FROM memberships") == \
        [["t"]]
    assert env.psql("SELECT message_count FROM topics") == [["2"]]
    assert env.psql("SELECT next_message_number, message_count, "
                    "topic_count FROM group_counters") == [["3", "2", "1"]]
    assert env.psql("SELECT number FROM messages WHERE search @@ "
                    "websearch_to_tsquery('simple', 'quick fox')") == \
        [["1"]]
    # duplicate Message-ID in one group, bad enum values: refused
    for bad in (
        "INSERT INTO messages (group_id, topic_id, message_id, "
        "from_address, raw) VALUES (1, 1, 'm1@x', 'a@b', 'r')",
        "UPDATE memberships SET role = 'admin'",
        "UPDATE memberships SET delivery = 'weekly'",
        "INSERT INTO accounts (email) VALUES ('A@EXAMPLE.ORG')",
    ):
        with pytest.raises(AssertionError):
            env.psql(bad)
    # deleting the group takes everything of it along
    env.psql("DELETE FROM groups")
    assert env.psql("SELECT (SELECT count(*) FROM messages) + "
                    "(SELECT count(*) FROM topics) + "
                    "(SELECT count(*) FROM memberships)") == [["0"]]
