# SPDX-License-Identifier: MIT
"""`make install DESTDIR=...` lays the system out as the FHS and the docs say,
and the generated configuration reference matches the config table."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GROUPS_BIN", REPO / "build" / "bin"))


def test_install_layout(tmp_path):
    dest = tmp_path / "pkg"
    build = BIN.parent
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}",
                        "PREFIX=/usr", f"BUILD={build}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for d in ("errord", "web", "smtpd", "messageserver", "karl",
              "rsscrawler", "instagramcrawler", "bouncer", "expirethreads",
              "senddigests"):
        p = dest / "usr/lib/groups" / d
        assert p.is_file() and os.access(p, os.X_OK), p
    for p in ("usr/bin/errtail", "usr/sbin/groupsadmin",
              "usr/sbin/groups-supervise"):
        assert os.access(dest / p, os.X_OK), p
    assert (dest / "usr/share/groups/sql/001_schema.sql").is_file()
    assert (dest / "etc/groups/groups.conf").is_file()
    assert (dest / "etc/cron.d/groups").is_file()
    assert (dest / "usr/lib/systemd/system/groups-errord.service").is_file()
    assert (dest / "usr/share/groups/nginx/groups.conf").is_file()
    # the shipped example configuration is valid as it stands
    conf = dest / "etc/groups/groups.conf"
    r = subprocess.run([str(dest / "usr/lib/groups/errord"), "-f", str(conf),
                        "-n"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "errord_port = " in r.stdout


def test_config_doc_is_current():
    r = subprocess.run([str(BIN / "groupsadmin"), "config-doc"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    doc = (REPO / "docs/config.md").read_text()
    assert r.stdout.strip() in doc, \
        "docs/config.md is stale: regenerate with groupsadmin config-doc"
