"""``rdsiam-emulator serve``: the standalone emulator (docs/server.md).

Order matters for "nothing starts half-way": the config is read and checked, then every port is
bound or checked, and only then do backends start. SIGTERM/SIGINT stop endpoints, then backends,
and exit 0.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rdsiam_emulator.cli import EXIT_ENVIRONMENT, EXIT_USAGE

if TYPE_CHECKING:
    from rdsiam_emulator.server.config import Config

EXIT_OK = 0


def register(sub: Any) -> None:
    """Add the ``serve`` subcommand and its options to ``sub`` (argparse subparsers)."""
    parser = sub.add_parser(
        "serve", help="run the emulator as a server (AWS APIs on one HTTP port + endpoints)",
        description="Start the instances of a TOML config (real PostgreSQL / MySQL / MariaDB "
        "servers behind emulated RDS endpoints with IAM authentication) and one HTTP port with "
        "the IAM, STS and RDS APIs (moto) and /_rdsiam/ (health, events, CA bundle, instances). "
        "Runs until SIGTERM or SIGINT.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config (default: $RDSIAM_CONFIG; none: no instances, only the "
                        "HTTP port)")
    parser.set_defaults(func=run)


def _epilog() -> str:
    from rdsiam_emulator.server.env import CONFIG_VAR, OVERRIDES

    lines = [f"environment (overrides [server] keys): {CONFIG_VAR} (the config file)"]
    lines += [f"  {var:<27} server.{key}" for var, (key, _) in OVERRIDES.items()]
    # a pip-installed copy has no docs/ folder: say where the reference is
    lines += ["", "HTTP paths: /_rdsiam/ (status page), /_rdsiam/health, /_rdsiam/events, "
              "/_rdsiam/ca.pem, /_rdsiam/instances, /_rdsiam/proxies; everything else: IAM, "
              "STS, RDS (moto).",
              "Every config key is described in docs/server.md of the rdsiam-emulator source "
              "(the sdist, or the project's repository)."]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT; return the exit code.

    0: clean stop; 2: bad config (one message naming the key); 4: an instance could not start.
    """
    from rdsiam_emulator.server.config import ConfigError, load
    from rdsiam_emulator.server.env import CONFIG_VAR

    began = time.perf_counter()
    path_text = args.config or os.environ.get(CONFIG_VAR) or None
    try:
        config = load(Path(path_text) if path_text else None, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"rdsiam-emulator serve: bad config: {exc}\n")
        return EXIT_USAGE
    problem = (_state_dir_problem(config.server.state_dir) or _version_problem(config)
               or _listen_problem(config))
    if problem is not None:
        sys.stderr.write(f"rdsiam-emulator serve: bad config: {problem}\n")
        return EXIT_USAGE
    # one account: requests with any credentials land in the configured account's state
    os.environ["MOTO_ACCOUNT_ID"] = config.server.account_id
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    # werkzeug logs every request to stderr; our stdout lines are what matters
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    _install_signals(stop)
    return _serve(config, stop, began)


def _state_dir_problem(path: Path | None) -> str | None:
    """Why ``state_dir`` cannot hold the CA (None: it can; created when missing)."""
    if path is None:
        return None
    from rdsiam_emulator.server.env import variable_for

    key = variable_for("server.state_dir", os.environ) or "server.state_dir"
    if path.exists() and not path.is_dir():
        return f"{key}: {path} exists and is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{key}: cannot create {path}: {exc.strerror or exc}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{key}: {path} is not writable"
    return None


def _version_problem(config: Config) -> str | None:
    from rdsiam_emulator.server.runtime import version_problem

    for i, inst in enumerate(config.instances):
        if inst.version is not None and inst.backend == "local":
            why = version_problem(inst.engine, inst.version)
            if why:
                return f"instances[{i}].version: {why}"
    return None


def _listen_problem(config: Config) -> str | None:
    from rdsiam_emulator.server.runtime import check_listen

    why = check_listen(config.server.host, config.server.port)
    if why:
        return f"server.port: {why}"
    for i, inst in enumerate(config.instances):
        if inst.listen_port:
            why = check_listen(inst.listen_host, inst.listen_port)
            if why:
                return f"instances[{i}].listen: {why}"
    return None


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # installed before any backend starts, so backends' own exit hooks leave SIGTERM to us
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _serve(config: Config, stop: threading.Event, began: float) -> int:
    from rdsiam_emulator.backends.errors import BackendError
    from rdsiam_emulator.server.config import ConfigError
    from rdsiam_emulator.server.http import App, HttpServer
    from rdsiam_emulator.server.iam_seed import apply_seed
    from rdsiam_emulator.server.proxy_config import create_proxies
    from rdsiam_emulator.server.runtime import Runtime, StartError

    temp = None
    state_dir = config.server.state_dir
    if state_dir is None:
        temp = tempfile.mkdtemp(prefix="rdsiam-serve-")
        state_dir = Path(temp)
    runtime = Runtime(config, state_dir, sys.stdout, stop=stop)
    http: HttpServer | None = None
    try:
        try:
            app = App(runtime)
            http = HttpServer(app, config.server.host, config.server.port)
        except (OSError, SystemExit):  # werkzeug exits when the port was taken since the check
            sys.stderr.write(f"rdsiam-emulator serve: bad config: server.port: cannot listen on "
                             f"{config.server.host}:{config.server.port}\n")
            return EXIT_USAGE
        http.start()
        api = f"http://{_client_host(config.server.host)}:{http.port}"
        runtime.say(f"rdsiam-emulator serve: AWS APIs (IAM, STS, RDS) and /_rdsiam/ on {api} "
                    f"(region {config.server.region}, account {config.server.account_id})")
        runtime.begin()  # backends boot while moto is imported
        # a signal during start-up abandons the rest of it (checked between the steps; the
        # backends still booting are waited for and stopped by runtime.close)
        steps = (app.moto, runtime.open, lambda: apply_seed(config, api),
                 runtime.start_configured, lambda: create_proxies(config, api))
        for step in steps:
            if stop.is_set():
                break
            try:
                step()
            except ConfigError as exc:
                sys.stderr.write(f"rdsiam-emulator serve: bad config: {exc}\n")
                return EXIT_USAGE
            except (BackendError, StartError) as exc:
                if stop.is_set():  # aborted by the signal, not a failure
                    break
                sys.stderr.write(f"rdsiam-emulator serve: could not start: {exc}\n")
                return EXIT_ENVIRONMENT
        if stop.is_set():
            runtime.say("shutting down (signal during start-up)")
            return EXIT_OK
        runtime.started = True
        # moto's modules are millions of long-lived objects: keep them out of every later
        # collection, and out of the one at interpreter exit (seconds under load, measured:
        # SIGTERM to exit 6-15 s at load 15 before, with a 10 s budget in the tests)
        gc.freeze()
        lines = runtime.hosts_lines()
        if lines:
            runtime.say("\n".join(["/etc/hosts lines for the RDS-style names:", *lines]))
        runtime.say(f"ready in {time.perf_counter() - began:.1f} s: {api}/_rdsiam/health")
        stop.wait()
        runtime.say("shutting down")
        return EXIT_OK
    finally:
        if http is not None:
            http.stop()
        runtime.close()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _client_host(host: str) -> str:
    from rdsiam_emulator.server.runtime import connect_address

    address = connect_address(host)
    return f"[{address}]" if ":" in address else address
