"""One writer per output folder: a second run into a folder that is being written stops with a message.

The lock is an advisory `flock` on `<folder>/.lock`, which the kernel releases when its holder dies,
so the lock of a killed run is never stuck; the file holds the holder's pid and command, for the message.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import LabError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _gone(holder: dict) -> bool:
    """The recorded holder ran on this machine and is no longer running."""
    return bool(holder.get("pid")) and holder.get("host") == socket.gethostname() and not _alive(int(holder["pid"]))


class FolderLock:
    def __init__(self, folder, log=print):
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self.log = log
        self.fd = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                h = self._holder()
                who = f"process {h.get('pid', '?')} on {h.get('host', '?')} ({h.get('command', 'mnist-lab')}, " \
                      f"since {h.get('since', '?')})" if h else "another process"
                if _gone(h):
                    # The run was killed but its notebooks (which inherit the lock) still run.
                    who = f"the notebooks still running from stopped process {h['pid']} ({h.get('command', '?')})"
                raise LabError(f"{self.folder} is being written by {who}; wait for it to finish, "
                               "or run into another folder with --out DIR") from None
            # The holder before us may have removed the file between our open and our lock:
            # then we locked a file nobody else will see, and must start again.
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        old = self._holder()
        if _gone(old):
            self.log(f"taking over the lock of process {old['pid']} ({old.get('command', '?')}), "
                     "which is no longer running; its finished runs are kept")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["mnist-lab"] + sys.argv[1:]),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
