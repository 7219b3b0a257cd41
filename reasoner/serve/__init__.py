"""`reasoner serve`: an OpenAI-compatible endpoint whose concurrent requests are batched in lockstep.

Needs the `serve` extra (`pip install -e ".[serve]"`: FastAPI and uvicorn); `run_server` is what
the CLI calls, `create_app` the app itself (reasoner.serve.app).
"""

from __future__ import annotations

from reasoner.serve.config import ServeConfig
from reasoner.serve.server import run_server

__all__ = ["ServeConfig", "run_server"]
