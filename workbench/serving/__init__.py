"""The launch stage: serve a Bento in the background, check it, always stop it."""

from workbench.serving.launch import check, launch, serve
from workbench.serving.server import Server

__all__ = ["Server", "check", "launch", "serve"]
