"""Run the app under uvicorn: the CLI's `reasoner serve`, and `python -m reasoner.serve`.

FastAPI and uvicorn are imported here, lazily, so a missing `serve` extra is one clear error.
A model that fails to load stops the server and is reported as the command's error.
"""

from __future__ import annotations

import socket
import sys

from reasoner.serve.config import ServeConfig
from reasoner.types import ReasonerError


def require_serve_extra() -> None:
    """One clear error when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ReasonerError(
            f"reasoner serve needs the 'serve' extra ({err.name} is not installed): "
            f'pip install -e ".[serve]"'
        ) from None


def check_address(host: str, port: int) -> None:
    """One clear error for a port out of range, or an address this process cannot listen on."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ReasonerError(f"serve: --port must be in 0..65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ReasonerError(f"serve: --host {host!r} does not resolve: {err}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise ReasonerError(f"serve: cannot listen on {host}:{port}: {err}") from None


def run_server(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted; the models load in the background (requests get 503 meanwhile)."""
    require_serve_extra()
    check_address(host, port)
    import uvicorn

    from reasoner.serve.app import create_app

    failure: list[str] = []
    server: uvicorn.Server | None = None

    def on_load_error(message: str) -> None:
        failure.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(cfg, on_load_error)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    print(
        f"reasoner serve: http://{host}:{port}/v1 (models: {', '.join(app.state.service.presets)}; "
        f"loading {cfg.policy} / {cfg.prm})",
        file=sys.stderr,
        flush=True,
    )
    server.run()
    if failure:
        raise ReasonerError(f"serve: the models failed to load: {failure[0]}")
    if not server.started:
        raise ReasonerError(f"serve: could not listen on {host}:{port} (see the message above)")
