# Vulture's false positives: names that look unused but are called or read by something vulture
# cannot see (the standard library, pydantic, pytest, hypothesis, a third-party base class) or that
# are public API documented in docs/PYTHON-API.md. vulture parses this file (pyproject [tool.vulture]); it is
# never imported. Entries are names, so one entry covers every definition of that name. Dead code
# is deleted, not listed here; a new entry needs a comment saying who uses the name.
# ruff: noqa

# --- module hooks (PEP 562): `import fedclient` resolves its re-exports lazily (docs/PYTHON-API.md)
__getattr__  # src/__init__.py
__dir__  # src/__init__.py

# --- http.server / socketserver call these on the handler and server classes they are given
_.do_GET  # observers/prometheus.py, sandbox/controller.py
_.do_POST  # sandbox/controller.py, tests/interop/test_recovery.py
_.log_message  # BaseHTTPRequestHandler's access log, silenced or sent to our logger
_.handle_error  # socketserver, sandbox/controller.py _QuietServer
_.daemon_threads  # ThreadingHTTPServer reads it when a request thread starts
_.request_queue_size  # socketserver's listen backlog
_.protocol_version  # BaseHTTPRequestHandler: HTTP/1.1 keep-alive
_.server_version  # BaseHTTPRequestHandler's Server header
_.close_connection  # BaseHTTPRequestHandler ends a keep-alive connection when it is set

# --- tarfile reads these TarInfo fields when it writes a member (adapters/package_build.py)
_.uname
_.gname
_.gid

# --- pydantic-settings (app/settings.py): fields are read by name, validators and the sources
# hook are called by pydantic itself (the hook with keyword arguments, so their names stay)
_.model_config
_.settings_customise_sources
dotenv_settings
file_secret_settings
_._name_is_printable  # @field_validator
_._empty_is_unset  # @field_validator
_._known_level  # @field_validator
_._any_text  # @field_validator
_._a_size  # @field_validator (sizes: a number or a number with a unit)
_.limit_memory  # site-policy fields: app/policy.py and app/policy_cmd.py read them by name
_.limit_cpu_seconds
_.limit_wall_seconds
_.limit_output
_.limit_open_files
_.max_package_bytes
_.max_unpacked_bytes
_.max_package_members
_.max_compression_ratio
_.validator  # `fedn client start -va`: accepted and warned about (docs/CONFIG.md)

# --- FEDn's client API, kept for code ported from `fedn.` (docs/PYTHON-API.md)
_.predicting  # ClientState.predicting = 4 (domain/state.py)
_.pkg_name  # PackageRuntime.pkg_name, set by download() as FEDn's PackageRuntime does

# --- pytest: module marks, fixtures (also when requested only for their effect), hooks
pytestmark
no_fedn_env  # tests/unit/conftest.py
restore_root_logger  # tests/unit/conftest.py
site_venv  # tests/interop/conftest.py; requested by fedn_network and diabetes for its effect
pytest_runtest_makereport  # tests/interop/conftest.py

# --- hypothesis stateful testing (tests/unit/test_state.py): @rule / @invariant methods, and
# the TestCase pytest collects
_.move
_.busy_state_only_returns_to_idle
_.agrees_with_model
_.history_follows_the_table
TestClientStateMachine

# --- FEDn's own classes, patched or subclassed by the interop harness (tests/interop/fedn_launch.py)
_.nullable  # SQLAlchemy Column.nullable, read by create_all
_.combine_models  # overrides FEDn's AggregatorBase.combine_models
