"""Checks config/airflow.cfg against the Airflow that requirements.lock installs (3.3.2 + providers).

Airflow 3 ignores keys it does not know, and it reads some old names only with a deprecation warning.
These tests make sure of the following for every key in the file:
* it exists in the installed version, including the options that providers add;
* it is not a deprecated, renamed or removed name;
* it has a comment line directly above it saying why it is set;
* its value differs from the default, unless it is in PINNED (set on purpose, with the reason given);
* it is not a secret or a host name, since those come from AIRFLOW__* environment variables that
  docker-compose.yml sets from .env.

Airflow is imported lazily, with AIRFLOW_HOME and AIRFLOW_CONFIG pointing at a temporary directory, so
importing it never writes an airflow.cfg (or anything else) into the repository or into ~/airflow.
"""

from __future__ import annotations

import configparser
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.configuration import AirflowConfigParser

REPO = Path(__file__).resolve().parents[2]
CFG_PATH = REPO / "config" / "airflow.cfg"
# The Airflow these checks are written against: the one pin, requirements.in (test_image_pins.py holds
# every other pin of it to this one).
_PIN = re.search(r"^apache-airflow\[[^\]]*\]==([\d.]+)$", (REPO / "requirements.in").read_text(), re.M)
assert _PIN, "requirements.in pins no apache-airflow"
AIRFLOW_VERSION = _PIN[1]
# AIRFLOW_HOME in the apache/airflow image: path defaults such as {AIRFLOW_HOME}/dags expand from it.
IMAGE_AIRFLOW_HOME = "/opt/airflow"

# Keys that may keep their default value, because they are stated on purpose. Each one comes with its reason.
PINNED: dict[tuple[str, str], str] = {
    ("scheduler", "use_row_level_locking"): "two active schedulers need it; False lets both queue one task",
    ("database", "sql_alchemy_pool_pre_ping"): "PgBouncer restarts drop pooled connections; must stay on",
    ("celery", "worker_prefetch_multiplier"): "a busy worker must not hoard tasks another could run",
    ("celery", "task_acks_late"): "visibility_timeout sizing assumes late acks (redelivery if a worker dies)",
    ("metrics", "statsd_prefix"): "Prometheus rules and dashboards match the airflow_ prefix",
    ("api", "expose_config"): "the configuration must never be exposed, even if the default flips",
}

# Values the stack depends on. Compose health checks, statsd_exporter and dashboards are built on them.
CONTRACT: dict[tuple[str, str], str] = {
    ("core", "executor"): "CeleryExecutor",
    ("core", "auth_manager"): "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
    ("core", "load_examples"): "False",
    ("scheduler", "enable_health_check"): "True",  # the compose healthcheck curls :8974/health
    ("scheduler", "use_row_level_locking"): "True",  # two schedulers
    ("celery", "worker_prefetch_multiplier"): "1",
    ("celery", "task_acks_late"): "True",
    ("metrics", "statsd_on"): "True",
    ("metrics", "statsd_port"): "9125",  # statsd_exporter's StatsD listener
    ("metrics", "statsd_prefix"): "airflow",
    ("metrics", "statsd_influxdb_enabled"): "True",  # tags become statsd_exporter labels
    ("metrics", "legacy_names_on"): "False",  # otherwise every metric is sent twice
    ("api", "expose_config"): "False",
}

# docker-compose.yml sets these from .env. Each setting has one source of truth, so none may be set here.
ENV_ONLY: frozenset[tuple[str, str]] = frozenset(
    {
        ("database", "sql_alchemy_conn"),
        ("celery", "broker_url"),
        ("celery", "result_backend"),
        ("core", "fernet_key"),
        ("api_auth", "jwt_secret"),
        ("api", "secret_key"),
        ("core", "execution_api_server_url"),
        ("metrics", "statsd_host"),
        ("celery", "flower_basic_auth"),
        ("api", "base_url"),
    }
)
SECRET_FRAGMENTS = (
    "fernet_key",
    "jwt_secret",
    "secret_key",
    "sql_alchemy_conn",
    "broker_url",
    "result_backend",
    "password",
)
_URL_WITH_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")

_SECTION_RE = re.compile(r"^\[(?P<section>[^\]]+)\]\s*$")
_KEY_RE = re.compile(r"^(?P<key>[^\s#;=:\[][^=:]*?)\s*[=:]\s*(?P<value>.*)$")
_TRUE_FALSE = configparser.ConfigParser.BOOLEAN_STATES


@dataclass(frozen=True)
class Entry:
    """A key set in the file, as written."""

    section: str
    key: str
    value: str
    line: int
    comment: str | None  # the text of the comment line directly above the key, if there is one

    @property
    def name(self) -> str:
        return f"[{self.section}] {self.key} (line {self.line})"


def parse_entries(text: str) -> list[Entry]:
    """List each `key = value` with its section, line number and the comment line directly above it."""
    entries: list[Entry] = []
    section: str | None = None
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        section_match = _SECTION_RE.match(line)
        key_match = _KEY_RE.match(line)
        if section_match:
            section = section_match["section"].strip()
        elif stripped and not stripped.startswith(("#", ";")) and key_match:
            if section is None:
                raise AssertionError(f"line {number}: key {key_match['key']!r} comes before any [section]")
            comment = stripped_comment(previous)
            entries.append(
                Entry(section, key_match["key"].strip().lower(), key_match["value"].strip(), number, comment)
            )
        previous = stripped
    return entries


def stripped_comment(line: str) -> str | None:
    if not line.startswith(("#", ";")):
        return None
    return line.lstrip("#;").strip() or None


CFG_TEXT = CFG_PATH.read_text(encoding="utf-8")
ENTRIES = parse_entries(CFG_TEXT)


def _fail_listing(problems: list[str], what: str) -> None:
    if problems:
        message = f"{CFG_PATH.name}: {len(problems)} key(s) {what}:\n  " + "\n  ".join(problems)
        pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module")
def airflow_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowConfigParser]:
    """Return a fresh parser of the installed Airflow that holds only its defaults, providers included."""
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW_CONFIG", str(home / "airflow.cfg"))
        from airflow.configuration import AirflowConfigParser

        # A new parser reads no file, so it holds just the defaults. Its configuration_description merges
        # core's config.yml with every installed provider's config (get_provider_info) and
        # provider_config_fallback_defaults.cfg: the same data that `airflow config list --defaults` prints.
        parser = AirflowConfigParser()
        _ = parser.configuration_description
        yield parser


@pytest.fixture(scope="module")
def options(airflow_conf: AirflowConfigParser) -> dict[tuple[str, str], dict[str, Any]]:
    """Map (section, key) to the option's description (default, type, sensitive, version_deprecated...)."""
    return {
        (section, key): info
        for section, content in airflow_conf.configuration_description.items()
        for key, info in (content.get("options") or {}).items()
    }


def default_of(info: dict[str, Any]) -> str | None:
    raw = info.get("default")
    if raw is None:
        return None
    return str(raw).replace("{AIRFLOW_HOME}", IMAGE_AIRFLOW_HOME)


def normalised(value: str, option_type: str | None) -> object:
    """Turn a value into something comparable: booleans, numbers and strings compare as Airflow reads them."""
    text = value.strip()
    if option_type == "boolean" or text.lower() in ("true", "false"):
        return _TRUE_FALSE.get(text.lower(), text)
    try:
        return float(text)
    except ValueError:
        return text


def test_installed_airflow_is_the_pinned_version() -> None:
    import airflow

    assert airflow.__version__ == AIRFLOW_VERSION, (
        f"these checks were written against Airflow {AIRFLOW_VERSION}, but {airflow.__version__} is "
        "installed: re-check config/airflow.cfg against the new version's defaults and deprecations, "
        "then update the pin"
    )


def test_defaults_include_provider_options(options: dict[tuple[str, str], dict[str, Any]]) -> None:
    for needed in [
        ("core", "parallelism"),
        ("celery", "worker_concurrency"),
        ("celery_broker_transport_options", "visibility_timeout"),
        ("fab", "session_backend"),
    ]:
        assert needed in options, f"the installed Airflow's defaults lack [{needed[0]}] {needed[1]}"


def test_file_is_read_the_same_way_by_configparser() -> None:
    parser = configparser.ConfigParser(strict=True, interpolation=None)  # strict: duplicate keys raise
    parser.read_string(CFG_TEXT, source=str(CFG_PATH))
    seen = {(section, key): value for section in parser.sections() for key, value in parser.items(section)}
    assert seen == {(e.section, e.key): e.value for e in ENTRIES}, "a key spans several lines or was misread"
    assert ENTRIES, "no keys found"


def test_every_key_exists_in_installed_airflow(
    airflow_conf: AirflowConfigParser, options: dict[tuple[str, str], dict[str, Any]]
) -> None:
    renames = deprecated_names(airflow_conf, options)
    problems = []
    for entry in ENTRIES:
        if (entry.section, entry.key) in options:
            continue
        keys = [key for section, key in options if section == entry.section]
        if not keys:
            problems.append(f"{entry.name}: no section [{entry.section}] in Airflow {AIRFLOW_VERSION}")
            continue
        hint = difflib.get_close_matches(entry.key, keys, n=2)
        elsewhere = [f"[{s}]" for s, k in options if k == entry.key]
        problems.append(
            f"{entry.name}: not an option of Airflow {AIRFLOW_VERSION} (it would be silently ignored)"
            + (f"; close: {', '.join(hint)}" if hint else "")
            + (f"; exists in {', '.join(elsewhere)}" if elsewhere else "")
            + (f"; {renames[(entry.section, entry.key)]}" if (entry.section, entry.key) in renames else "")
        )
    _fail_listing(problems, "unknown to the installed Airflow")


def deprecated_names(
    airflow_conf: AirflowConfigParser, options: dict[tuple[str, str], dict[str, Any]]
) -> dict[tuple[str, str], str]:
    """Map each deprecated or renamed (section, key) to what replaces it, per the installed version."""
    from airflow.cli.commands.config_command import CONFIGS_CHANGES

    names: dict[tuple[str, str], str] = {}
    # Read with a deprecation warning: {new: old}.
    for (new_section, new_key), (old_section, old_key, version) in airflow_conf.deprecated_options.items():
        names[(old_section, old_key)] = f"deprecated in {version}, use [{new_section}] {new_key}"
    for new_section, (old_section, version) in airflow_conf.deprecated_sections.items():
        for key in airflow_conf.get_options_including_defaults(new_section):
            names[(old_section, key)] = f"section deprecated in {version}, use [{new_section}]"
    # `airflow config lint` table: keys that 3.x renamed or removed (mostly ignored without any warning).
    for change in CONFIGS_CHANGES:
        old = (change.config.section, change.config.option)
        if change.renamed_to is not None:
            names[old] = f"renamed to [{change.renamed_to.section}] {change.renamed_to.option}"
        elif change.was_removed and change.remove_if_equals is None and not change.default_change:
            names[old] = f"removed. {change.suggestion}".strip()
    # Options that are still read, but whose description marks them as deprecated.
    for (section, key), info in options.items():
        if info.get("version_deprecated"):
            names[(section, key)] = f"deprecated in {info['version_deprecated']}"
    return names


def test_no_deprecated_or_renamed_key(
    airflow_conf: AirflowConfigParser, options: dict[tuple[str, str], dict[str, Any]]
) -> None:
    from airflow.cli.commands.config_command import CONFIGS_CHANGES

    names = deprecated_names(airflow_conf, options)
    problems = [f"{e.name}: {names[(e.section, e.key)]}" for e in ENTRIES if (e.section, e.key) in names]
    for entry in ENTRIES:
        old_values = airflow_conf.deprecated_values.get(entry.section, {})
        if entry.key in old_values and old_values[entry.key][0].search(entry.value):
            problems.append(f"{entry.name}: deprecated value {entry.value!r}")
        for change in CONFIGS_CHANGES:
            if (change.config.section, change.config.option) != (entry.section, entry.key):
                continue
            bad = [v for v in (change.remove_if_equals, change.is_invalid_if) if v is not None]
            if entry.value in [str(v) for v in bad]:
                problems.append(f"{entry.name}: value {entry.value!r} is invalid in 3.x. {change.suggestion}")
    _fail_listing(problems, "deprecated, renamed or removed")


def test_every_key_has_a_reason_comment_directly_above() -> None:
    problems = [f"{e.name}: no comment line directly above it saying why" for e in ENTRIES if not e.comment]
    _fail_listing(problems, "without a reason")


def test_every_key_differs_from_default_or_is_pinned(options: dict[tuple[str, str], dict[str, Any]]) -> None:
    problems = []
    for entry in ENTRIES:
        info = options.get((entry.section, entry.key))
        if info is None or (entry.section, entry.key) in PINNED:
            continue  # unknown keys fail test_every_key_exists_in_installed_airflow
        default = default_of(info)
        if default is None:
            continue
        option_type = info.get("type")
        if normalised(entry.value, option_type) == normalised(default, option_type):
            problems.append(
                f"{entry.name}: {entry.value!r} is the {AIRFLOW_VERSION} default; remove it or add it to "
                "PINNED with the reason"
            )
    _fail_listing(problems, "set to their default")


def test_pinned_keys_are_in_the_file() -> None:
    keys = {(e.section, e.key) for e in ENTRIES}
    stale = [f"[{s}] {k}: {why}" for (s, k), why in PINNED.items() if (s, k) not in keys]
    assert not stale, "PINNED lists keys that the file no longer sets: " + "; ".join(stale)


def test_no_secret_or_host_is_set(options: dict[tuple[str, str], dict[str, Any]]) -> None:
    problems = []
    for entry in ENTRIES:
        if (entry.section, entry.key) in ENV_ONLY:
            env = f"AIRFLOW__{entry.section.upper()}__{entry.key.upper()}"
            problems.append(f"{entry.name}: comes from {env} in docker-compose.yml (.env)")
        elif any(fragment in entry.key for fragment in SECRET_FRAGMENTS):
            problems.append(f"{entry.name}: secret-looking key; set it from .env")
        elif options.get((entry.section, entry.key), {}).get("sensitive"):
            problems.append(f"{entry.name}: Airflow marks this option sensitive; set it from .env")
        elif _URL_WITH_CREDENTIALS.search(entry.value):
            problems.append(f"{entry.name}: value holds a URL with credentials")
    _fail_listing(problems, "that must come from the environment")


def test_values_parse_as_their_type(
    airflow_conf: AirflowConfigParser, options: dict[tuple[str, str], dict[str, Any]]
) -> None:
    problems = []
    for entry in ENTRIES:
        info = options.get((entry.section, entry.key))
        if info is None:
            continue
        if re.search(r"\s[#;]", entry.value):
            problems.append(f"{entry.name}: Airflow keeps an inline comment in the value: {entry.value!r}")
        option_type = info.get("type")
        try:
            if option_type == "integer":
                int(entry.value)
            elif option_type == "float":
                float(entry.value)
            elif option_type == "boolean" and entry.value.lower() not in _TRUE_FALSE:
                raise ValueError(entry.value)
        except ValueError:
            problems.append(f"{entry.name}: {entry.value!r} is not a valid {option_type}")
        allowed = airflow_conf.enums_options.get((entry.section, entry.key))
        if allowed is not None and entry.value not in [str(v) for v in allowed]:
            problems.append(f"{entry.name}: {entry.value!r} not one of {allowed}")
    _fail_listing(problems, "with invalid values")


def test_stack_contract_values() -> None:
    values = {(e.section, e.key): e.value for e in ENTRIES}
    problems = [
        f"[{s}] {k}: expected {want!r}, found {values.get((s, k))!r}"
        for (s, k), want in CONTRACT.items()
        if normalised(values.get((s, k), "<missing>"), None) != normalised(want, None)
    ]
    if ("celery_broker_transport_options", "visibility_timeout") not in values:
        problems.append("[celery_broker_transport_options] visibility_timeout: unset means 86400 + a warning")
    _fail_listing(problems, "break what the compose stack relies on")


def test_timeouts_are_consistent() -> None:
    values = {(e.section, e.key): e.value for e in ENTRIES}

    def number(section: str, key: str, default: float) -> float:
        return float(values.get((section, key), default))

    # Redis redelivers a task still running after visibility_timeout, so a second worker starts it.
    visibility = number("celery_broker_transport_options", "visibility_timeout", 86400)
    execution = number("core", "default_task_execution_timeout", 0)
    assert execution > 0, "[core] default_task_execution_timeout must be set: it caps tasks without one"
    assert execution < visibility, (
        f"[core] default_task_execution_timeout ({execution}) must stay below "
        f"[celery_broker_transport_options] visibility_timeout ({visibility})"
    )
    # A processor killed first reports nothing useful; the import timeout must fire inside it.
    import_timeout = number("core", "dagbag_import_timeout", 30)
    processor_timeout = number("dag_processor", "dag_file_processor_timeout", 50)
    assert import_timeout < processor_timeout, (
        f"[core] dagbag_import_timeout ({import_timeout}) must stay below "
        f"[dag_processor] dag_file_processor_timeout ({processor_timeout})"
    )
