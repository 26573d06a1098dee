"""The kernel manager of headless runs: it shuts an idle kernel down without interrupting it.

jupyter_client interrupts every kernel (SIGINT to its process group) just before it sends the
shutdown request, so that a kernel busy in a cell can still answer it. papermill shuts its kernel
down only once it has the kernel's last reply (the ``kernel_info`` it asks for after the cells):
the kernel is idle, or still inside its handler of that reply, where ipykernel has installed
Python's default SIGINT handler. The interrupt then lands there and the kernel logs
``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` (2 of 4 `workbench run`s; 1 of 8
runs of a one-cell notebook here). The shutdown request alone stops an idle kernel; one that does
not stop within ``shutdown_wait_time`` is sent SIGTERM and then SIGKILL, as before.
"""

from __future__ import annotations

from jupyter_client.manager import AsyncKernelManager


class QuietShutdownKernelManager(AsyncKernelManager):
    """nbclient's default kernel manager, minus the interrupt before a shutdown (see above)."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:  # set by shutdown_kernel before it interrupts
            return
        await super()._async_interrupt_kernel()
