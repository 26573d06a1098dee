"""The launch stage: serve a Bento in the background, check it, always stop it."""

from workbench.serving.launch import check, launch, serve
from workbench.serving.server import Server
from workbench.serving.session import LaunchSession, StatusWatcher, server_status

__all__ = ["LaunchSession", "Server", "StatusWatcher", "check", "launch", "serve", "server_status"]
