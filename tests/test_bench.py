"""`vigil bench`, run as a user runs it: a process that starts real `vigil` processes
(in a temporary home, or on the backend's database and broker) and prints its tables.
Small runs: these tests check the benchmarks work and report what they measured, never
how fast anything is."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from sqlalchemy import Engine

from tests.conftest import subprocess_env
from vigil.config import Settings
from vigil.tenancy import store

NUMBER = r"[\d,]+"
# | label | requests/s | p50 ms | p99 ms | applied/s |  (ratio rows end their figures in x)
TABLE_ROW = re.compile(
    r"^\| (.+?)\s+\|\s+([\d.,x]+)\s+\|\s+([\d.x]+)\s+\|\s+([\d.x]+)\s+\|\s+([\d.,x]*)\s+\|$",
    re.MULTILINE,
)


def bench(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    backend: list[str] = []
    if settings.database_url:
        backend = [
            "--database-url",
            settings.database_url,
            "--kafka",
            settings.kafka_bootstrap_servers,
        ]
    return subprocess.run(
        [sys.executable, "-m", "vigil", "bench", *args, *backend],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=600,
    )


def figure(text: str) -> float:
    return float(text.replace(",", ""))


def test_occurrences_bench_prints_each_scenario_beside_its_baseline(stack: Settings) -> None:
    done = bench(stack, "occurrences", "--occurrences", "1500")
    assert done.returncode == 0, done.stderr
    backend = "PostgreSQL + Kafka" if stack.database_url else "SQLite + embedded log"
    assert f"occurrences end to end, {backend}" in done.stdout
    for label in (r"hot \(1 fingerprint\)", r"distinct \(1,500 fingerprints\)"):
        match = re.search(
            rf"^{label}\s+1,500\s+({NUMBER})\s+({NUMBER}|too few)\s+({NUMBER})\s+"
            rf"([\d.]+|-)\s+(\d+)$",
            done.stdout,
            re.MULTILINE,
        )
        assert match, done.stdout
        produced, applied, baseline, ratio, rss = match.groups()
        assert figure(produced) > 0 and figure(baseline) > 0 and int(rss) > 0
        if applied != "too few":
            assert figure(ratio) == pytest.approx(figure(applied) / figure(baseline), abs=0.002)
    # progress goes to stderr, the table alone to stdout
    assert "hot: producing 1,500 occurrences" in done.stderr
    assert "producing" not in done.stdout


def test_checkins_bench_prints_ingest_beside_the_health_baseline(stack: Settings) -> None:
    done = bench(stack, "checkins", "--monitors", "40", "--checkins", "80", "--concurrency", "4")
    assert done.returncode == 0, done.stderr
    rows = {m.group(1).strip(): m.groups()[1:] for m in TABLE_ROW.finditer(done.stdout)}
    health = rows["/_health/ (baseline), concurrency 4"]
    checkins = rows["check-ins, concurrency 4"]
    ratio = rows["ratio ingest / baseline (requests/s)"]
    assert figure(health[0]) > 0 and health[3] == ""
    assert figure(checkins[0]) > 0 and figure(checkins[3]) > 0  # applied/s
    assert figure(ratio[0].rstrip("x")) == pytest.approx(
        figure(checkins[0]) / figure(health[0]), abs=0.01
    )
    peak = re.search(r"peak RSS of vigil serve: (\d+) MB", done.stdout)
    assert peak and int(peak.group(1)) > 0
    assert "setup: 40 monitors created by their first check-in" in done.stderr
    assert re.search(r"created in \d+\.\d s \(\d[\d,]* monitors/s\)", done.stderr)


def test_checkins_bench_sends_curl_check_ins_without_an_id(stack: Settings) -> None:
    done = bench(
        stack,
        "checkins",
        "--monitors",
        "30",
        "--checkins",
        "60",
        "--concurrency",
        "3",
        "--client",
        "curl",
    )
    assert done.returncode == 0, done.stderr
    rows = {m.group(1).strip(): m.groups()[1:] for m in TABLE_ROW.finditer(done.stdout)}
    assert figure(rows["/_health/ (baseline), concurrency 3"][0]) > 0
    curl = rows["check-ins by curl, concurrency 3"]
    assert figure(curl[0]) > 0 and figure(curl[3]) > 0  # every one applied, as a new row


def test_a_database_in_use_is_refused_untouched(stack: Settings, engine: Engine) -> None:
    with engine.begin() as conn:
        org = store.create_organization(conn, "in-use")
    url = stack.database_url or f"sqlite:///{stack.home / 'vigil.sqlite3'}"
    done = subprocess.run(
        [sys.executable, "-m", "vigil", "bench", "occurrences", "--database-url", url],
        env=subprocess_env(stack),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "already holds vigil data" in done.stderr
    with engine.connect() as conn:
        assert [o.slug for o in store.list_organizations(conn)] == [org.slug]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["occurrences", "--occurrences", "0"], "--occurrences must be from 1 to 180,000"),
        (["checkins", "--monitors", "20000"], "--monitors must be from 1 to 10,000"),
        (["checkins", "--monitors", "10", "--checkins", "100"], "the limit of 6 a minute"),
        (["occurrences", "--database-url", "mysql://x/y"], "--database-url must be a sqlite"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vigil", "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert message in done.stderr
