"""A real single-node SLURM for the tests, started as this process's children from Debian's
`slurm-wlm` and `munge`: munged on its own key and socket, slurmctld and slurmd on private ports,
one node (this host) and one partition, every file under a temporary directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")
PARTITION = "test"


@dataclass
class Cluster:
    """A running test cluster: `env` points the clients (and submitit) at its slurm.conf."""

    root: Path
    conf: Path
    env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, Path] = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True) -> str:
        r = subprocess.run(list(cmd), env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def logs(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            p = self.root / name
            if p.exists():
                out.append(f"--- {name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel the jobs left (a failed test may leave one waiting forever), SIGTERM each daemon by
        its pid file (slurmd first), SIGKILL what is left, then any job process (slurmstepd, job
        scripts: they outlive slurmd) still running under this cluster's slurm.conf."""
        try:
            self.run("scancel", "--user", str(os.geteuid()), check=False)
            deadline = time.time() + 10
            while self.run("squeue", "-h", "-o", "%i", check=False).strip() and time.time() < deadline:
                time.sleep(0.2)
        except (OSError, subprocess.SubprocessError):
            pass
        pids = []
        for name in ("slurmd", "slurmctld", "munged"):
            f = self.pids.get(name)
            try:
                pid = int(f.read_text().strip()) if f else 0
            except (OSError, ValueError):
                continue
            if pid:
                pids.append(pid)
                _signal(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        for p in pids:
            _signal(p, signal.SIGKILL)
        for p in _processes_with(f"SLURM_CONF={self.conf}".encode()):
            _signal(p, signal.SIGKILL)


def _processes_with(env_entry: bytes) -> list[int]:
    """Pids (not this one) whose environment holds `env_entry`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if env_entry in (d / "environ").read_bytes().split(b"\0"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def unavailable() -> str | None:
    """Why a test cluster cannot start here (None when it can): not root, or no binaries and no
    way to install them (`apt-get install slurm-wlm munge` is tried once when root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "a test SLURM needs root (munged and slurmd run as root)"
    missing = [b for b in DAEMONS + CLIENTS if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], capture_output=True, timeout=600)
        missing = [b for b in DAEMONS + CLIENTS if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"SLURM binaries missing ({', '.join(missing)}); apt-get install slurm-wlm munge failed"
    return None


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 2048


def start(root: Path, *, cpus: int = 2, timeout: float = 60) -> Cluster:
    """Write slurm.conf under `root`, start munged, slurmctld and slurmd; return when the node is idle."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    host = socket.gethostname().split(".")[0]
    for d in ("state", "spool", "munge"):
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = root / "munge" / "munge.socket"
    ctld_port, d_port = _free_ports(2)
    mem = min(_memory_mb() - 512, 4096)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=safeadapttest",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={sock}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={d_port}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "MinJobAge=600",
        "KillWait=3",
        "DefMemPerCPU=256",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    cluster = Cluster(root, conf, env={"SLURM_CONF": str(conf)},
                      pids={"munged": root / "munged.pid", "slurmctld": root / "slurmctld.pid",
                            "slurmd": root / "slurmd.pid"})
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run([_bin("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
                        f"--seed-file={root / 'munge' / 'munged.seed'}"], check=True, env=env, timeout=30,
                       capture_output=True)
        subprocess.run([_bin("slurmctld"), "-f", str(conf), "-c", "-i"], check=True, env=env, timeout=30,
                       capture_output=True)
        subprocess.run([_bin("slurmd"), "-f", str(conf), "-c", "-N", host], check=True, env=env, timeout=30,
                       capture_output=True)
        deadline = time.time() + timeout
        while True:
            state = cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False).strip()
            if state in ("idle", "mix", "alloc"):
                return cluster
            if time.time() > deadline:
                raise RuntimeError(f"the test SLURM node never came up (sinfo: {state!r})\n{cluster.logs()}")
            time.sleep(0.2)
    except BaseException:
        cluster.stop()
        raise
