"""A throw-away single-node SLURM cluster (Debian's slurm-wlm) for the integration test.

Writes slurm.conf (+ gres.conf with one fake GPU) to /etc/slurm — srun's jobstep drops SLURM_CONF, so the
config must be at the default path — starts slurmctld and slurmd with state, spool, logs and pid files in a temp
dir, waits until the node is idle, and stops exactly the daemons it started (by their pid files). It refuses to
touch an /etc/slurm/slurm.conf it did not write.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MARKER = "# written by genbench tests/slurm_cluster.py"
CONF_DIR = Path("/etc/slurm")


class ClusterError(RuntimeError):
    pass


def can_host() -> str | None:
    """None if this machine can run the cluster, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (installs slurm-wlm, writes /etc/slurm, starts daemons)"
    if not Path("/etc/debian_version").exists():
        return "needs Debian (apt-get install slurm-wlm)"
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text(errors="replace"):
        return f"{conf} exists and was not written by this test: not touching a real cluster's config"
    return None


def install() -> None:
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo")):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=300)
    proc = subprocess.run(["apt-get", "install", "-y", "-qq", "slurm-wlm"], env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise ClusterError(f"apt-get install slurm-wlm failed:\n{proc.stderr[-2000:]}")


def node_line() -> str:
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


class SingleNodeCluster:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.host = socket.gethostname().split(".")[0]
        self.started: list[tuple[str, Path]] = []

    def write_config(self) -> None:
        for d in ("state", "spool"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        node = node_line()
        if not node.startswith(f"NodeName={self.host}"):
            node = f"NodeName={self.host} " + node.split(" ", 1)[1]
        conf = f"""{MARKER}
ClusterName=genbench-test
SlurmctldHost={self.host}
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MinJobAge=300
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation={self.dir / 'state'}
SlurmdSpoolDir={self.dir / 'spool'}
SlurmctldPidFile={self.dir / 'slurmctld.pid'}
SlurmdPidFile={self.dir / 'slurmd.pid'}
SlurmctldLogFile={self.dir / 'slurmctld.log'}
SlurmdLogFile={self.dir / 'slurmd.log'}
GresTypes=gpu
{node} Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        (CONF_DIR / "slurm.conf").write_text(conf)
        gres = f"NodeName={self.host} Name=gpu Type=fake File=/dev/null Count=1"
        (CONF_DIR / "gres.conf").write_text(f"{MARKER}\n{gres}\n")

    def _start(self, name: str, args: list[str]) -> None:
        pidfile = self.dir / f"{name}.pid"
        proc = subprocess.run([name, *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ClusterError(f"{name} did not start ({proc.returncode}): {proc.stderr[-1500:]}\n"
                               f"{self.log_tail(name)}")
        for _ in range(50):
            if pidfile.exists() and pidfile.read_text().strip():
                self.started.append((name, pidfile))
                return
            time.sleep(0.1)
        raise ClusterError(f"{name} wrote no pid file {pidfile}\n{self.log_tail(name)}")

    def log_tail(self, name: str, n: int = 30) -> str:
        log = self.dir / f"{name}.log"
        return f"--- {log} ---\n" + ("\n".join(log.read_text().splitlines()[-n:]) if log.exists() else "(no log)")

    def start(self, timeout: float = 60.0) -> None:
        self.write_config()
        self._start("slurmctld", ["-c", "-i"])
        self._start("slurmd", [])
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
            state = out.stdout.strip()
            if state.startswith("idle") or state.startswith("mixed"):
                return
            time.sleep(1)
        self.stop()
        raise ClusterError(f"the SLURM node did not come up within {timeout:.0f} s (state: {state or 'none'})\n"
                           f"{self.log_tail('slurmctld')}\n{self.log_tail('slurmd')}")

    def stop(self) -> None:
        for _name, pidfile in reversed(self.started):
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.started.clear()
