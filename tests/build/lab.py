"""A local JupyterLab as Binder starts it, for browser tests of the chapters as notebooks.

:func:`lab_server` copies the files of a Binder checkout (what git tracks, plus new files git does
not ignore) into a temporary directory, installs the JupyterLab settings with postBuild's own
settings step (``postBuild --settings-only DIR``, the directory given to JupyterLab as
``--LabApp.app_settings_dir``), and serves that copy on 127.0.0.1 at a free port without a token.
The working tree is never served: JupyterLab saving a Jupytext notebook rewrites its ``.md``.
Autosave is off all the same (a user setting in the temporary settings directory).

Usage for a person: ``python -m tests.build.lab`` serves the copy until Ctrl-C.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.build._common import ROOT

#: What a Binder checkout has at least, when git cannot list the files.
CHECKOUT_FALLBACK = ["notebooks", "causalbook_lib", "book", "lab", "postBuild", "pyproject.toml",
                     "_config.yml", "_toc.yml", "requirements.lock", "environment.yml"]
#: Settings of the test's own user, not Binder's: no autosave (the copy stays as it was), and every
#: cell in the DOM (JupyterLab otherwise renders only the cells near the viewport).
TEST_USER_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def missing_packages(python: str = sys.executable) -> list[str]:
    """The packages of a Binder JupyterLab that ``python``'s environment lacks."""
    needed = ["jupyterlab", "jupytext", "jupyterlab_myst"]
    if python == sys.executable:
        return [m for m in needed if importlib.util.find_spec(m) is None]
    code = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    out = subprocess.run([python, "-c", code, *needed], capture_output=True, text=True, check=True)
    return out.stdout.split()


def checkout_files(root: Path = ROOT) -> list[str]:
    """Relative paths of the files a Binder checkout of ``root`` has."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=root, capture_output=True, check=True).stdout.decode()
        files = [f for f in out.split("\0") if f and (root / f).is_file()]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for name in CHECKOUT_FALLBACK:
        p = root / name
        if p.is_file():
            files.append(name)
        elif p.is_dir():
            files += [str(f.relative_to(root)) for f in p.rglob("*")
                      if f.is_file() and "__pycache__" not in f.parts and ".ipynb_checkpoints" not in f.parts]
    return files


def copy_checkout(dest: Path, root: Path = ROOT) -> Path:
    for rel in checkout_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return dest


def install_settings(checkout: Path, settings_dir: Path) -> Path:
    """Run postBuild's settings step (the same one Binder runs) into ``settings_dir``."""
    subprocess.run(["bash", str(checkout / "postBuild"), "--settings-only", str(settings_dir)],
                   cwd=checkout, check=True, capture_output=True, text=True)
    return settings_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class LabServer:
    url: str              # http://127.0.0.1:PORT (the root of the server, like a Binder session's)
    checkout: Path        # the served copy
    app_settings: Path    # where postBuild's settings went
    log: Path
    proc: subprocess.Popen

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}/api/{path}", timeout=10) as r:
            return json.load(r)


def export_notebooks(checkout: Path, executed: Path) -> list[Path]:
    """Put the plain notebooks into ``checkout/notebooks`` as the publishing workflow puts them on the
    ``stable`` branch (``_ext/ipynb_export.py``, glued values from the executed chapters)."""
    from tests.build._common import ipynb_export

    return ipynb_export().export_chapters(checkout / "notebooks", executed, root=checkout)


@contextlib.contextmanager
def lab_server(python: str = sys.executable, env: dict[str, str] | None = None,
               log: Path | None = None, startup_timeout: float = 120.0, executed: Path | None = None):
    """Serve a temporary Binder checkout with JupyterLab from ``python``'s environment; yield a LabServer.

    ``env`` is added to the server's (and so the kernels') environment. The copy is importable as
    ``causalbook_lib`` through PYTHONPATH, and claims measured there are written inside the copy.
    With ``executed`` (a folder of executed chapters), the copy also holds the plain notebooks
    ``notebooks/NN.ipynb``, as the ``stable`` branch does.
    """
    tmp = Path(tempfile.mkdtemp(prefix="causalbook-lab-"))
    try:
        checkout = copy_checkout(tmp / "repo")
        if executed is not None:
            export_notebooks(checkout, executed)
        app_settings = install_settings(checkout, tmp / "app-settings")
        user_settings = tmp / "user-settings"
        for plugin, values in TEST_USER_SETTINGS.items():
            f = user_settings / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values), encoding="utf-8")
        port = _free_port()
        server_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(checkout), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "JUPYTERLAB_SETTINGS_DIR": str(user_settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "CAUSALBOOK_RESULTS": str(tmp / "results"),
            **(env or {}),
        }
        cmd = [python, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={checkout}", f"--LabApp.app_settings_dir={app_settings}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
               "--ServerApp.terminals_enabled=False", "--ServerApp.allow_root=True"]
        log = log or tmp / "jupyterlab.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as log_file:
            proc = subprocess.Popen(cmd, cwd=checkout, env=server_env, stdout=log_file,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        server = LabServer(f"http://127.0.0.1:{port}", checkout, app_settings, log, proc)
        try:
            _wait_ready(server, startup_timeout)
            yield server
        finally:
            _shutdown(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.proc.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/lab", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab not ready after {timeout:.0f} s:\n{server.log.read_text()[-3000:]}")


def _shutdown(proc: subprocess.Popen) -> None:
    """SIGTERM makes the server shut its kernels down; what is left of its own group is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server's own session: kernels it did not stop


if __name__ == "__main__":
    with lab_server(env={"OMP_NUM_THREADS": "1"}) as lab:
        print(f"JupyterLab on {lab.url}/lab (a copy in {lab.checkout}); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            lab.proc.wait()
