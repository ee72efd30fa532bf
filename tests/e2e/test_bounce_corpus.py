# SPDX-License-Identifier: MIT
"""The bounce parser (src/common/dsn.c) against Mailman's bounce corpus.

python3-flufl.bounce ships real bounces from many MTAs
(flufl/bounce/tests/data/*.txt) and, in flufl/bounce/testing/helpers.py,
a table of (detector, file, expected addresses[, temporary]).  The table
is read from the installed package at test time (parsed, not imported:
the module needs nose2), never copied here.  A file the table lists more
than once (one detector finds nothing, another the address) is expected
to yield what the table expects overall: the union of the addresses.  A
file the table does not list is expected to yield what flufl.bounce's own
scan of every detector finds.

build/tests/test_dsn in its DSN_CLASSIFY=1 mode prints one JSON line per
file.  Without it (or without flufl.bounce) the tests skip, except under
CI=true (as CI runs them), where they fail.  Every sample must be parsed
without a crash; the samples outside KNOWN_MISSES must yield exactly the
expected addresses (compared without case), and those in KNOWN_MISSES must
still miss, so the list stays true.
Where flufl.bounce marks a failure temporary, the parser must call it
soft; otherwise hard, except for PERMANENCE_DIFFERS.
"""
import ast
import email
import importlib.util
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# sample -> why the parser does not yield what flufl.bounce expects
KNOWN_MISSES = {
    "yale_01.txt": "Yale's ph report names a bare user; flufl makes up "
                   "two addresses from it (@yale.edu, @cs.yale.edu)",
}

# sample -> why the permanence differs from flufl.bounce's
PERMANENCE_DIFFERS = {
    "dsn_02.txt": "Action: failed with Status 4.4.7: soft by our rule "
                  "(failed for a temporary reason), flufl says permanent",
    "yahoo_01.txt": "qmail-style final failure with code #4.4.1 (no SMTP "
                    "connection, queue too long): soft by the code, flufl "
                    "says permanent",
}


def _binary():
    """build/tests/test_dsn next to GROUPS_BIN's build dir, or the repo's."""
    cands = []
    gb = os.environ.get("GROUPS_BIN")
    if gb:
        cands.append(os.path.join(os.path.dirname(gb.rstrip("/")),
                                  "tests", "test_dsn"))
    cands.append(os.path.join(ROOT, "build", "tests", "test_dsn"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    return None


def _flufl_dir():
    spec = importlib.util.find_spec("flufl.bounce")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _table(pkg):
    """flufl's DATA table, parsed from testing/helpers.py."""
    path = os.path.join(pkg, "testing", "helpers.py")
    with open(path, encoding="utf-8") as fp:
        tree = ast.parse(fp.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "DATA" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("no DATA table in " + path)


def _expectations(pkg, files):
    """file -> (set of lower-cased addresses, temporary?)."""
    exp = {}
    for row in _table(pkg):
        _, name, addrs = row[:3]
        temp = len(row) > 3 and row[3]
        got = {a.decode().lower() for a in addrs}
        old = exp.get(name)
        if old is None or (got and not old[0]):
            exp[name] = (got, temp)
        elif got:
            exp[name] = (old[0] | got, old[1] or temp)
    rest = [f for f in files if f not in exp]
    if rest:
        from flufl.bounce import all_failures
        for name in rest:
            with open(os.path.join(pkg, "tests", "data", name), "rb") as fp:
                temp, perm = all_failures(email.message_from_binary_file(fp))
            if temp and not perm:
                exp[name] = ({a.decode().lower() for a in temp}, True)
            else:
                exp[name] = ({a.decode().lower() for a in perm}, False)
    return exp


def _unavailable(why):
    """Skip for a developer without the parts; fail in CI (CI=true), which
    must never pass over the corpus silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def corpus():
    binary = _binary()
    if binary is None:
        _unavailable("build/tests/test_dsn is not built: make "
                     "build/tests/test_dsn")
    pkg = _flufl_dir()
    if pkg is None:
        _unavailable("python3-flufl.bounce is not installed "
                     "(deploy/install-deps.sh)")
    data = os.path.join(pkg, "tests", "data")
    files = sorted(f for f in os.listdir(data) if f.endswith(".txt"))
    paths = [os.path.join(data, f) for f in files]
    env = dict(os.environ, DSN_CLASSIFY="1")
    proc = subprocess.run([binary] + paths, env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = proc.stdout.decode().splitlines()
    got = {}
    for line in lines:
        rec = json.loads(line)
        got[os.path.basename(rec["file"])] = rec
    return files, got, _expectations(pkg, files)


def test_every_sample_parsed(corpus):
    files, got, _ = corpus
    assert sorted(got) == files
    assert len(files) > 100
    for name in files:
        rec = got[name]
        assert len(rec["rcpts"]) <= 32
        for r in rec["rcpts"]:
            assert r["kind"] in ("hard", "soft"), (name, r)
            assert "@" in r["addr"], (name, r)
            assert not any(ord(c) < 0x20 for c in r["addr"] + r["status"] +
                           r["diagnostic"]), (name, r)


def test_addresses_match(corpus):
    files, got, exp = corpus
    matched, misses, wrong = 0, [], []
    for name in files:
        found = {r["addr"].lower() for r in got[name]["rcpts"]}
        ok = found == exp[name][0]
        matched += ok
        if not ok and name not in KNOWN_MISSES:
            wrong.append("%s: got %s, expected %s" % (
                name, sorted(found), sorted(exp[name][0])))
        if ok and name in KNOWN_MISSES:
            misses.append("%s now matches: take it off KNOWN_MISSES" % name)
    print("\nbounce corpus: %d of %d samples yield exactly the expected "
          "addresses" % (matched, len(files)))
    assert not wrong, "\n".join(wrong)
    assert not misses, "\n".join(misses)


def test_permanence(corpus):
    files, got, exp = corpus
    wrong, compared = [], 0
    for name in files:
        addrs, temp = exp[name]
        if name in KNOWN_MISSES or not addrs:
            continue
        want = "soft" if temp else "hard"
        kinds = {r["kind"] for r in got[name]["rcpts"]
                 if r["addr"].lower() in addrs}
        compared += 1
        same = kinds == {want}
        if same == (name in PERMANENCE_DIFFERS):
            wrong.append("%s: %s, flufl.bounce says %s%s" % (
                name, sorted(kinds), want,
                " (listed as differing)" if same else ""))
    print("\nbounce corpus: permanence compared on %d samples, %d listed "
          "as differing" % (compared, len(PERMANENCE_DIFFERS)))
    assert not wrong, "\n".join(wrong)
